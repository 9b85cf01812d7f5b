//! Sign-in as a person does it: a real, headless Chromium clicks through Google's pages as the emulator plays them
//! (issues #14 and #15: one instance, and two replicas sharing Redis behind a load balancer). Screenshots of every
//! step are saved under `target/browser-artifacts/<test>/`.

mod chooser;
mod driver;
mod replicas;
mod signin;
