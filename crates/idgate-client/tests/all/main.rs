//! idgate-client against the emulator and small loopback servers: every source, ADC, the cache, both adapters.
//! One binary (as reqwest-retry does), one module per area.

mod access;
mod access_flows;
mod adapters;
mod adc;
mod attack;
mod cache;
mod helpers;
mod sign;
mod sources;
