//! The web client in a real browser: headless Chromium driven by playwright-core runs
//! `tests/web/e2e.js` against the all-in-one app. `scripts/test` installs both (Debian's
//! `chromium`, npm's `playwright-core` into `.test-services/e2e`).

use std::path::PathBuf;
use std::process::Command;

use ticketing::{Settings, TicketingApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_client_signs_up_sells_buys_and_cancels_in_a_browser() {
    let app = TicketingApp::build(Settings::for_tests(ticketing_test_app::JWT_KEY))
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());

    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let node_modules = std::env::var("TICKETING_E2E_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest.join("../../.test-services/e2e/node_modules"));
    assert!(
        node_modules.join("playwright-core").exists(),
        "playwright-core is missing from {} (scripts/test installs it)",
        node_modules.display()
    );
    let script = manifest.join("tests/web/e2e.js");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(base)
            .env("NODE_PATH", node_modules)
            .output()
    })
    .await
    .unwrap()
    .expect("node must be installed (scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser run failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("sign up, sell, list, buy, cancel, pay, sign out, no CSP violation: ok"),
        "{stdout}"
    );
}
