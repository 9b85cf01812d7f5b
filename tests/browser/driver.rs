//! A real browser for the tests: Debian's headless Chromium driven over WebDriver (`chromedriver`) with
//! fantoccini. `.ci/run` installs `chromium` and `chromium-driver` when they are missing; without them these tests
//! FAIL, unless `IDGATE_SKIP_BROWSER_TESTS=1` says to skip them (loudly).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};

const SKIP_ENV: &str = "IDGATE_SKIP_BROWSER_TESTS";

/// Kills chromedriver (and so its Chromium) when the test ends, however it ends.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A headless Chromium session, and where its screenshots go.
pub(crate) struct Browser {
    pub(crate) client: Client,
    artifacts: PathBuf,
    step: std::cell::Cell<u32>,
    _driver: Driver,
}

fn executable(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    candidates
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map(Path::to_path_buf)
        .or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path)
                .flat_map(|dir| {
                    candidates
                        .iter()
                        .map(move |c| dir.join(Path::new(c).file_name().unwrap_or_default()))
                })
                .find(|p| p.is_file())
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; `None` only when the browser is missing and
    /// `IDGATE_SKIP_BROWSER_TESTS=1`. Screenshots go to `target/browser-artifacts/{test}/`.
    pub(crate) async fn start(test: &str) -> Option<Self> {
        let chromium = executable(
            "IDGATE_CHROMIUM",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
        );
        let chromedriver = executable("IDGATE_CHROMEDRIVER", &["/usr/bin/chromedriver"]);
        let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
            if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
                eprintln!(
                    "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                     !! SKIPPED: browser test {test} ({SKIP_ENV}=1): chromium/chromedriver missing.\n\
                     !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
                );
                return None;
            }
            panic!(
                "the browser tests need Chromium and ChromeDriver (Debian: apt-get install chromium chromium-driver; \
                 .ci/run installs them). Set {SKIP_ENV}=1 to skip them explicitly."
            );
        };
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let driver = Driver(driver);
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": chromium,
                // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1024,768", "--no-first-run", "--disable-extensions"],
            }),
        );
        let webdriver = format!("http://127.0.0.1:{port}");
        let mut last = None;
        // chromedriver takes a moment to listen.
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&webdriver)
                .await
            {
                Ok(client) => {
                    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
                        .parent()
                        .unwrap_or_else(|| Path::new("."))
                        .join("browser-artifacts")
                        .join(test);
                    let _ = std::fs::remove_dir_all(&artifacts);
                    std::fs::create_dir_all(&artifacts).expect("the artifacts directory");
                    return Some(Self {
                        client,
                        artifacts,
                        step: std::cell::Cell::new(0),
                        _driver: driver,
                    });
                }
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!("chromedriver at {webdriver} never accepted a session: {last:?}");
    }

    /// Saves a screenshot of the current page as `NN-{name}.png` in this test's artifacts directory.
    pub(crate) async fn screenshot(&self, name: &str) {
        let step = self.step.get() + 1;
        self.step.set(step);
        // A click that starts a navigation returns before the new page is attached; a screenshot then fails with
        // "aborted by navigation" (seen with Chromium 148 on a loaded CI machine). Try again while it settles.
        let mut tries = 0;
        let png = loop {
            match self.client.screenshot().await {
                Ok(png) => break png,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("a screenshot: {e:?}"),
            }
        };
        let path = self.artifacts.join(format!("{step:02}-{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// The page's visible text. Read again while a navigation a click started replaces the page under the read
    /// (a stale element), for at most a few seconds.
    pub(crate) async fn text(&self) -> String {
        let mut last = None;
        for _ in 0..50 {
            let read = match self.client.find(fantoccini::Locator::Css("body")).await {
                Ok(body) => body.text().await,
                Err(e) => Err(e),
            };
            match read {
                Ok(text) => return text,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page's text could not be read: {last:?}");
    }

    /// Clicks the element `css` selects, a button whose form submission navigates, and waits until the document it
    /// leads to has loaded (after every redirect).
    ///
    /// WebDriver's click may return before the navigation it starts has replaced the page: a read right after it
    /// then sees the page the button was on. CI caught that once (the replicas test read the account chooser's text
    /// where replica A's page was due). So the old document is marked before the click, and the click is done
    /// when a loaded document without the mark is in place.
    pub(crate) async fn click(&self, css: &str) {
        let button = self
            .client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"));
        self.client
            .execute("window.__idgate_before_click = true;", vec![])
            .await
            .unwrap_or_else(|e| panic!("marking the page before clicking {css}: {e}"));
        button
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
        for _ in 0..100 {
            // While the navigation is under way a script may fail ("aborted by navigation"): not there yet.
            let loaded = self
                .client
                .execute(
                    "return window.__idgate_before_click === undefined && document.readyState === 'complete';",
                    vec![],
                )
                .await;
            if matches!(loaded, Ok(serde_json::Value::Bool(true))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("clicking {css} did not lead to a new page within 10 s");
    }

    /// The current URL.
    pub(crate) async fn url(&self) -> url::Url {
        self.client.current_url().await.expect("the current URL")
    }

    /// Ends the session (closing Chromium).
    pub(crate) async fn close(self) {
        let _ = self.client.close().await;
    }
}
