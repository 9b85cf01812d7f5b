//! idgate end to end, against the emulator, over real HTTP on 127.0.0.1: hostile input through the real layers,
//! secrets hygiene of every log line and error, and fault handling on both sides. One binary, one module per area.

mod faults;
mod hostile;
mod keys;
mod proxy;
mod proxy_pool;
mod proxy_signin;
mod secrets;
mod support;
