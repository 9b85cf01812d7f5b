//! Sign-in as a person does it: a real, headless Chromium clicks through Google's pages as the emulator plays them
//! (issue #14). Screenshots of every step are saved under `target/browser-artifacts/<test>/`.

mod chooser;
mod driver;
mod signin;
