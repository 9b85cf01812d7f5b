//! Shared set-up: an emulator, a manual clock pinned to "now", and verifiers pointed at the emulator.

use std::sync::Arc;

use idgate_core::clock::{Clock, ManualClock};
use idgate_core::verify::{IapVerifier, OidcVerifier, OidcVerifierBuilder};
use idgate_emulator::Emulator;

pub(crate) const AUDIENCE: &str = "https://my-service-abc123-uc.a.run.app";
pub(crate) const CALLER: &str = "caller@other-project.iam.gserviceaccount.com";

pub(crate) struct World {
    pub(crate) emulator: Emulator,
    pub(crate) clock: ManualClock,
}

impl World {
    pub(crate) async fn new() -> Self {
        let emulator = Emulator::builder()
            .project_id("my-project")
            .project_number(123456789)
            .start()
            .await
            .unwrap();
        Self {
            emulator,
            clock: ManualClock::starting_now(),
        }
    }

    /// The clock's "now" in unix seconds (tokens are minted relative to it).
    pub(crate) fn now(&self) -> i64 {
        self.clock.unix_seconds()
    }

    pub(crate) fn oidc_builder(&self) -> OidcVerifierBuilder {
        OidcVerifier::builder()
            .audience(AUDIENCE)
            .clock(Arc::new(self.clock.clone()))
            .keys_url(self.emulator.oidc_jwks_url())
    }

    pub(crate) fn oidc(&self) -> OidcVerifier {
        self.oidc_builder().build().unwrap()
    }

    pub(crate) fn iap(&self) -> IapVerifier {
        IapVerifier::builder()
            .audience(self.emulator.iap_audience_app_engine())
            .clock(Arc::new(self.clock.clone()))
            .keys_url(self.emulator.iap_jwks_url())
            .build()
            .unwrap()
    }
}
