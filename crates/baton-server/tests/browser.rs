//! The dashboard in a real browser: headless Chromium driven by chromedriver through the W3C
//! WebDriver protocol (JSON over HTTP, spoken here with reqwest), against a server running in
//! this process over a SQLite store in a temporary directory.
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (CI installs them). Without them
//! the browser test fails: a dashboard that was never opened in a browser is not tested.
//!
//! Waiting is WebDriver's own: the session's implicit wait makes "find element" retry in the
//! driver until the element is there or the wait runs out, so a condition is expressed as an
//! element that exists only when it holds (an XPath on the status badge's text, a CSS selector on
//! a graph node's state), and the test never sleeps.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Server;
use serde_json::{Value, json};

mod common;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The W3C name of an element reference in WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long "find element" keeps looking (the page refreshes its live parts every 2 s).
const IMPLICIT_WAIT_MS: u64 = 20_000;

const CONFIG: &str = "
tokens:
  - { name: opal, token: t-opal, roles: [operator, approver], groups: [dispatchers] }
  - { name: vic, token: t-viewer, roles: [viewer] }
";

const FLOW: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: ship, version: '1.0.0' }
do:
  - ask:
      call: approval
      with:
        title: Ship order to the lumber yard
        instance: ${ $workflow.id }
        assignees: [ 'group:dispatchers' ]
        data: { order: '${ .order }' }
        window: PT2H
  - finish:
      set: { shipped: true, approved: '${ .approved }', by: '${ .by }' }
"#;

// ---------------------------------------------------------------------------------------------
// The server

async fn server(with_triggers: bool) -> Server {
    let s = common::start(
        CONFIG,
        with_triggers,
        reqwest::Client::builder()
            // The dashboard answers with redirects; the tests look at them.
            .redirect(reqwest::redirect::Policy::none()),
    )
    .await;
    let (status, body) = s
        .api("POST", "/v1/flows", Some(json!({"source": FLOW})))
        .await;
    assert_eq!(status, 201, "{body}");
    s
}

impl Server {
    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, "t-opal", body).await
    }

    /// A dashboard request as a browser signed in with `token` would make it, from this
    /// server's own pages unless `headers` say otherwise.
    async fn page(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, String)],
        form: Option<Vec<(&str, String)>>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("cookie", format!("baton_token={t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if let Some(f) = form {
            let body: Vec<String> = f
                .into_iter()
                .map(|(k, v)| format!("{k}={}", common::urlencode(&v)))
                .collect();
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.join("&"));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.unwrap())
    }

    fn origin(&self) -> (&'static str, String) {
        ("origin", self.base.clone())
    }
}

/// The fields of the start form.
fn start_form(csrf: &str, input: &str) -> Vec<(&'static str, String)> {
    vec![
        ("_csrf", csrf.to_string()),
        ("flow", "test/ship".to_string()),
        ("input", input.to_string()),
    ]
}

/// The value of the hidden `_csrf` field of a page.
fn csrf_of(html: &str) -> String {
    let at = html
        .find(r#"name="_csrf" value=""#)
        .unwrap_or_else(|| panic!("no CSRF field in {html}"));
    let rest = &html[at + r#"name="_csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

// ---------------------------------------------------------------------------------------------
// WebDriver

/// A chromedriver process, killed when dropped.
struct ChromeDriver {
    child: Child,
    base: String,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChromeDriver {
    /// Starts chromedriver on a free port and returns once it says it is listening.
    fn start() -> ChromeDriver {
        assert!(
            std::path::Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: install the Debian packages `chromium` and `chromium-driver`"
        );
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {CHROMEDRIVER} ({e}): install the Debian packages `chromium` and `chromium-driver`"
                )
            });
        // chromedriver prints a line once it listens. Its output is read to the end on a thread,
        // so that a full pipe never stops it.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let driver = ChromeDriver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains("started successfully") => return driver,
                Ok(_) => continue,
                Err(e) => panic!("chromedriver did not start: {e}"),
            }
        }
    }
}

/// A browser session, closed when dropped.
struct Browser {
    http: reqwest::Client,
    url: String,
    /// chromedriver's address and the session's path, for closing it from `drop`.
    driver_addr: String,
    session_path: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    /// Ends the session, which makes chromedriver quit Chromium. Done here, on every way out of
    /// a test (a failed assertion too): killing chromedriver alone leaves Chromium running.
    /// Blocking, plain HTTP/1.1: `drop` cannot await, and the answer comes once Chromium is gone.
    fn drop(&mut self) {
        let end = || -> std::io::Result<()> {
            let mut s = std::net::TcpStream::connect(&self.driver_addr)?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            write!(
                s,
                "DELETE {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session_path, self.driver_addr
            )?;
            // chromedriver keeps the connection open: read one whole answer, not to the end.
            let mut answer = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = s.read(&mut chunk)?;
                if n == 0 {
                    return Ok(());
                }
                answer.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&answer);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if answer.len() >= end + 4 + length {
                        return Ok(());
                    }
                }
            }
        };
        if let Err(e) = end() {
            eprintln!("could not close the browser session: {e}");
        }
    }
}

impl Browser {
    async fn open(driver: &ChromeDriver) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let http = reqwest::Client::new();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let resp: Value = http
            .post(format!("{}/session", driver.base))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {resp}"))
            .to_string();
        let b = Browser {
            http,
            url: format!("{}/session/{id}", driver.base),
            driver_addr: driver.base.trim_start_matches("http://").to_string(),
            session_path: format!("/session/{id}"),
            _profile: profile,
        };
        b.cmd(
            "POST",
            "/timeouts",
            json!({"implicit": IMPLICIT_WAIT_MS, "pageLoad": 30_000, "script": 10_000}),
        )
        .await
        .unwrap();
        b
    }

    /// One WebDriver command; `Err` carries the driver's error.
    async fn cmd(&self, method: &str, path: &str, body: Value) -> Result<Value, Value> {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url));
        if method != "GET" {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let ok = resp.status().is_success();
        let v: Value = resp.json().await.unwrap();
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(v["value"].clone())
        }
    }

    async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url }))
            .await
            .unwrap();
    }

    async fn current_url(&self) -> String {
        let v = self.cmd("GET", "/url", Value::Null).await.unwrap();
        v.as_str().unwrap().to_string()
    }

    async fn source(&self) -> String {
        let v = self.cmd("GET", "/source", Value::Null).await.unwrap();
        v.as_str().unwrap_or_default().to_string()
    }

    /// The element `selector` finds, waiting (in the driver) until there is one; panics with
    /// the page if there is none in time.
    async fn find(&self, using: &str, selector: &str) -> String {
        match self
            .cmd(
                "POST",
                "/element",
                json!({"using": using, "value": selector}),
            )
            .await
        {
            Ok(v) => v[ELEMENT_KEY].as_str().unwrap().to_string(),
            Err(e) => {
                let url = self.current_url().await;
                let page = self.source().await;
                panic!("no `{selector}` on {url}: {e}\n---- page ----\n{page}");
            }
        }
    }

    async fn css(&self, selector: &str) -> String {
        self.find("css selector", selector).await
    }

    async fn xpath(&self, selector: &str) -> String {
        self.find("xpath", selector).await
    }

    async fn text(&self, element: &str) -> String {
        let v = self
            .cmd("GET", &format!("/element/{element}/text"), Value::Null)
            .await
            .unwrap();
        v.as_str().unwrap_or_default().to_string()
    }

    async fn click(&self, element: &str) {
        self.cmd("POST", &format!("/element/{element}/click"), json!({}))
            .await
            .unwrap();
    }

    async fn clear(&self, element: &str) {
        self.cmd("POST", &format!("/element/{element}/clear"), json!({}))
            .await
            .unwrap();
    }

    async fn type_text(&self, element: &str, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await
        .unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_in_the_browser_and_see_the_instance_complete() {
    let server = server(false).await;
    let driver = ChromeDriver::start();
    let b = Browser::open(&driver).await;

    // Not signed in: every page sends the browser to the login page, and back after it.
    b.goto(&format!("{}/ui", server.base)).await;
    let token = b.css("#token").await;
    assert!(b.current_url().await.contains("/ui/login?next="));
    b.type_text(&token, "t-opal").await;
    b.click(&b.css("#login").await).await;
    let who = b.css("#whoami").await;
    assert_eq!(b.text(&who).await, "opal");
    assert!(b.current_url().await.ends_with("/ui"));

    // The list refreshes itself: an instance started elsewhere (here, through the API) appears
    // without a reload.
    let (status, started) = server
        .api(
            "POST",
            "/v1/instances",
            Some(json!({"flow": "ship", "input": {"order": "ord-1"}})),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    let other = started["id"].as_str().unwrap().to_string();
    b.css(&format!("tr[data-instance='{other}']")).await;

    // Start an instance from the page.
    let input = b.css("#start-input").await;
    b.clear(&input).await;
    b.type_text(&input, r#"{"order": "ord-7"}"#).await;
    b.click(&b.css("#start").await).await;
    let id_el = b.css("#instance-id").await;
    let id = b.text(&id_el).await;
    assert!(
        b.current_url()
            .await
            .ends_with(&format!("/ui/instances/{id}"))
    );

    // Its page: waiting for a person, the approval task named, the graph coloured by state.
    b.xpath("//strong[@class='waiting-what' and normalize-space()='Waiting for approval']")
        .await;
    b.xpath("//span[@id='status' and normalize-space()='waiting']")
        .await;
    b.css(r#"g.node[data-ref="/do/0/ask"][data-state="waiting"]"#)
        .await;
    b.css(r#"g.node[data-ref="/do/1/finish"][data-state="pending"]"#)
        .await;
    // The task's document is written when the approval effect is performed, just after the
    // instance is durably waiting; the live part refreshes every 2 s until the card names it.
    b.xpath("//div[@data-waiting][contains(., 'Ship order to the lumber yard')]")
        .await;

    // The inbox: both tasks open, assigned to the group; approve this instance's.
    b.click(&b.css("a[href='/ui/approvals']").await).await;
    let task = format!("//div[@data-task][.//code[normalize-space()='{id}']]");
    let text = b.text(&b.xpath(&task).await).await;
    assert!(text.contains("group:dispatchers"), "{text}");
    assert!(text.contains("Ship order to the lumber yard"), "{text}");
    b.click(
        &b.xpath(&format!("{task}//button[contains(@class, 'approve')]"))
            .await,
    )
    .await;
    let done = b.css("#done").await;
    assert!(b.text(&done).await.contains("approved"));
    // Answered: who decided is shown; the other task is still open.
    let answered = b.text(&b.css("#answered").await).await;
    assert!(
        answered.contains("opal") && answered.contains(&id),
        "{answered}"
    );
    b.xpath(&format!(
        "//div[@data-task][.//code[normalize-space()='{other}']]"
    ))
    .await;

    // The instance completes; its page says so, with the output and every task completed.
    b.goto(&format!("{}/ui/instances/{id}", server.base)).await;
    b.xpath("//span[@id='status' and normalize-space()='completed']")
        .await;
    b.css(r#"g.node[data-ref="/do/0/ask"][data-state="completed"]"#)
        .await;
    b.css(r#"g.node[data-ref="/do/1/finish"][data-state="completed"]"#)
        .await;
    let output = b.text(&b.css("#output").await).await;
    assert!(output.contains("\"shipped\": true"), "{output}");
    assert!(output.contains("\"by\": \"opal\""), "{output}");
    // A finished instance offers no controls.
    assert!(!b.source().await.contains("id=\"cancel\""));

    // The other instance, cancelled from its page: the task it was waiting in shows it.
    b.goto(&format!("{}/ui/instances/{other}", server.base))
        .await;
    let reason = b.css("form[action$='/cancel'] input[name='reason']").await;
    b.type_text(&reason, "customer called").await;
    b.click(&b.css("#cancel").await).await;
    b.xpath("//span[@id='status' and normalize-space()='cancelled']")
        .await;
    b.css(r#"g.node[data-ref="/do/0/ask"][data-state="cancelled"]"#)
        .await;
    let timeline = b.text(&b.css("#timeline").await).await;
    assert!(timeline.contains("by opal: customer called"), "{timeline}");

    // The list's filters.
    b.goto(&format!("{}/ui?status=completed", server.base))
        .await;
    b.css(&format!("tr[data-instance='{id}']")).await;
    assert!(!b.source().await.contains(&other));
    drop(b);

    let (status, body) = server
        .api("GET", &format!("/v1/instances/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["instance"]["status"], "completed", "{body}");
    assert_eq!(body["instance"]["output"]["approved"], true, "{body}");
}

#[tokio::test]
async fn pages_need_a_valid_token_and_forms_need_the_csrf_token() {
    let server = server(false).await;

    // No token, or a wrong one: to the login page; a refreshing fragment is told by header.
    let (status, headers, _) = server.page("GET", "/ui/approvals", None, &[], None).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/ui/login?next=%2Fui%2Fapprovals");
    let (status, _, _) = server.page("GET", "/ui", Some("t-wrong"), &[], None).await;
    assert_eq!(status, 303);
    let (status, headers, _) = server
        .page(
            "GET",
            "/ui/instances/table",
            None,
            &[("hx-request", "true".into())],
            None,
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(headers["hx-redirect"], "/ui/login");

    // Login sets an HttpOnly, SameSite=Strict cookie and goes back where it was asked to, but
    // only to a dashboard page.
    let (status, headers, _) = server
        .page(
            "POST",
            "/ui/login",
            None,
            &[server.origin()],
            Some(vec![
                ("token", "t-opal".into()),
                ("next", "/ui/approvals".into()),
            ]),
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/ui/approvals");
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("baton_token=t-opal;")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let (_, headers, _) = server
        .page(
            "POST",
            "/ui/login",
            None,
            &[server.origin()],
            Some(vec![
                ("token", "t-opal".into()),
                ("next", "https://evil.example/".into()),
            ]),
        )
        .await;
    assert_eq!(headers["location"], "/ui");
    let (status, _, body) = server
        .page(
            "POST",
            "/ui/login",
            None,
            &[server.origin()],
            Some(vec![("token", "t-nope".into())]),
        )
        .await;
    assert_eq!(status, 401);
    assert!(body.contains("not valid") && !body.contains("t-nope"));
    // Another site cannot sign a browser in.
    let (status, _, _) = server
        .page(
            "POST",
            "/ui/login",
            None,
            &[("origin", "http://evil.example".into())],
            Some(vec![("token", "t-opal".into())]),
        )
        .await;
    assert_eq!(status, 403);

    // Starting an instance from the page: the CSRF token and this site's origin are both
    // needed.
    let (_, _, page) = server.page("GET", "/ui", Some("t-opal"), &[], None).await;
    let csrf = csrf_of(&page);
    let input = r#"{"order": "<script>alert(1)</script>"}"#;
    let (status, _, body) = server
        .page(
            "POST",
            "/ui/instances",
            Some("t-opal"),
            &[server.origin()],
            Some(start_form("forged", input)),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, _, _) = server
        .page(
            "POST",
            "/ui/instances",
            Some("t-opal"),
            &[("origin", "http://evil.example".into())],
            Some(start_form(&csrf, input)),
        )
        .await;
    assert_eq!(status, 403);
    let (status, headers, body) = server
        .page(
            "POST",
            "/ui/instances",
            Some("t-opal"),
            &[server.origin()],
            Some(start_form(&csrf, input)),
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let location = headers["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/ui/instances/"));

    // User data is escaped on the page.
    let (status, _, page) = server
        .page("GET", &location, Some("t-opal"), &[], None)
        .await;
    assert_eq!(status, 200);
    assert!(!page.contains(input) && !page.contains("<script>alert"));
    // Shown, as text.
    assert!(page.contains("script&#62;alert(1)"), "{page}");

    // A viewer sees, but has no start form and cannot start.
    let (_, _, page) = server.page("GET", "/ui", Some("t-viewer"), &[], None).await;
    assert!(page.contains("instances-table") && !page.contains("start-form"));
    let (status, _, body) = server
        .page(
            "POST",
            "/ui/instances",
            Some("t-viewer"),
            &[server.origin()],
            Some(start_form(&csrf_of(&page), input)),
        )
        .await;
    assert_eq!(status, 403);
    assert!(body.contains("operator role"), "{body}");
    // The viewer's CSRF token is not the operator's: each is derived from its own token.
    assert_ne!(csrf_of(&page), csrf);
}

#[tokio::test]
async fn the_triggers_page_lists_the_quarantine_and_replays_a_corrected_event() {
    let server = server(true).await;
    // Not a CloudEvent (no `specversion`): quarantined with the reason.
    let bad =
        json!({"id": "ev-1", "source": "maplewood/portal", "type": "maplewood.order.cancelled"});
    let (status, receipt) = server.api("POST", "/v1/events", Some(bad.clone())).await;
    assert_eq!(status, 202, "{receipt}");
    assert_eq!(receipt["outcome"], "quarantined", "{receipt}");
    let qid = receipt["quarantine_id"].as_str().unwrap().to_string();

    let (status, _, page) = server
        .page("GET", "/ui/triggers", Some("t-opal"), &[], None)
        .await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!(r#"data-quarantine="{qid}""#)),
        "{page}"
    );
    assert!(page.contains("specversion"), "the reason is shown: {page}");
    assert!(page.contains("1 held"), "{page}");
    let replay_url = format!("/ui/triggers/quarantine/{qid}/replay");
    assert!(page.contains(&replay_url));
    // A viewer sees the quarantine but gets no replay button.
    let (_, _, viewer_page) = server
        .page("GET", "/ui/triggers", Some("t-viewer"), &[], None)
        .await;
    assert!(viewer_page.contains(&qid) && !viewer_page.contains(&replay_url));

    let mut corrected = bad.clone();
    corrected["specversion"] = json!("1.0");
    let (status, _, page) = server
        .page(
            "POST",
            &replay_url,
            Some("t-opal"),
            &[server.origin()],
            Some(vec![
                ("_csrf", csrf_of(&page)),
                ("corrected", corrected.to_string()),
            ]),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!("Replayed {qid}: accepted")),
        "{page}"
    );
    assert!(page.contains("0 held"), "{page}");
    // Replayed once: a second replay is a conflict, said on the page.
    let (status, _, page) = server
        .page(
            "POST",
            &replay_url,
            Some("t-opal"),
            &[server.origin()],
            Some(vec![("_csrf", csrf_of(&page))]),
        )
        .await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("replayed before"), "{page}");

    // The providers page renders (no catalogue in this server) and refreshes from its table.
    let (status, _, page) = server
        .page("GET", "/ui/providers", Some("t-opal"), &[], None)
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("no-providers") && page.contains("hx-get=\"/ui/providers/table?t="));
}
