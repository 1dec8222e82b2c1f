//! The `allot` binary as an operator uses it: first start prints an admin key once,
//! `keys create` makes keys with roles, SIGTERM stops the server cleanly, and data
//! survives a restart of the process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_allot");

struct Server {
    child: Child,
    url: String,
    stderr: mpsc::Receiver<String>,
    lines: Vec<String>,
}

fn data_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("allot-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

// The child is owned by the returned `Server`, which waits for it (terminate or drop).
#[allow(clippy::zombie_processes)]
fn start(dir: &Path, command: &str) -> Server {
    let mut child = Command::new(BIN)
        .args([command, "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env_remove("ALLOT_ADMIN_KEY")
        .env_remove("ALLOT_DATABASE_URL")
        .env("ALLOT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("server printed its address");
        lines.push(line.clone());
        if let Some(rest) = line.split("listening on ").nth(1) {
            let url = rest.split_whitespace().next().unwrap().to_owned();
            // The key line(s) follow the address line.
            lines.push(rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap());
            return Server { child, url, stderr: rx, lines };
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failing test must not leave a server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn printed_key(&self) -> Option<String> {
        self.lines.iter().find_map(|l| l.strip_prefix("admin key (shown once, store it now): ").map(str::to_owned))
    }

    /// SIGTERM, then the exit status and what the server printed while stopping.
    fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        // Everything printed until the pipe closed: the reader thread may still be
        // forwarding the last lines when the process has exited (under load it was, and
        // "allot stopped" was missed).
        let mut after = Vec::new();
        while let Ok(line) = self.stderr.recv_timeout(std::time::Duration::from_secs(10)) {
            after.push(line);
        }
        (exit, after)
    }
}

fn get(url: &str, key: &str) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let resp = client().get(url).bearer_auth(key).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    })
}

fn put(url: &str, key: &str, body: serde_json::Value) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { client().put(url).bearer_auth(key).json(&body).send().await.unwrap().status().as_u16() })
}

#[test]
fn first_start_prints_an_admin_key_once_and_sigterm_stops_cleanly_keeping_the_data() {
    let dir = data_dir("serve");
    let server = start(&dir, "serve");
    let admin = server.printed_key().expect("first start on an empty database prints an admin key");
    assert!(admin.starts_with("allot_") && admin.len() == 70, "{admin}");
    let node = serde_json::json!({"type": "dc", "name": "Reno", "location": {"lat": 39.53, "lon": -119.81},
        "time_zone": "America/Los_Angeles", "capabilities": ["ship"]});
    assert_eq!(put(&format!("{}/v1/nodes/DC-RENO", server.url), &admin, node), 201);
    let (exit, after) = server.terminate();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(after.iter().any(|l| l == "allot stopped"), "{after:?}");

    // The second start prints no key, and the first key and the node are still there.
    let server = start(&dir, "serve");
    assert_eq!(server.printed_key(), None);
    let (status, body) = get(&format!("{}/v1/nodes/DC-RENO", server.url), &admin);
    assert_eq!((status, body["name"].as_str()), (200, Some("Reno")));

    // `keys create` works against the same data directory while the server runs, and as
    // a one-shot command starts no background work (nothing to stop, nothing to warn about).
    let out = Command::new(BIN)
        .args(["keys", "create", "--role", "channel:web", "--data-dir"])
        .arg(&dir)
        .env_remove("ALLOT_DATABASE_URL")
        .env("ALLOT_LOG", "debug")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("background work started"), "{said}");
    assert!(!said.contains("WARN") && !said.contains("ERROR"), "{said}");
    let channel_key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(get(&format!("{}/v1/nodes/DC-RENO", server.url), &channel_key).0, 200);
    let write =
        serde_json::json!({"type": "dc", "name": "x", "location": {"lat": 0.0, "lon": 0.0}, "time_zone": "UTC"});
    assert_eq!(put(&format!("{}/v1/nodes/DC-X", server.url), &channel_key, write), 403);
    assert_eq!(get(&format!("{}/v1/nodes/DC-RENO", server.url), "allot_wrong").0, 401);

    let bad_role =
        Command::new(BIN).args(["keys", "create", "--role", "root", "--data-dir"]).arg(&dir).output().unwrap();
    assert!(!bad_role.status.success());
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("is not a role"));

    let (exit, _) = server.terminate();
    assert!(exit.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_loads_the_network_once_and_always_hands_out_a_working_key() {
    let dir = data_dir("demo");
    let server = start(&dir, "demo");
    assert!(
        server.lines.iter().any(|l| l.starts_with("demo network loaded: 60 nodes, 500 items")),
        "{:?}",
        server.lines
    );
    let key = server.printed_key().unwrap();
    let (status, body) = get(&format!("{}/v1/nodes?limit=1000", server.url), &key);
    assert_eq!(status, 200);
    let nodes = body["nodes"].as_array().unwrap();
    assert_eq!(nodes.iter().filter(|n| n["type"] == "dc").count(), 4);
    assert!(nodes.iter().filter(|n| n["type"] == "store").count() >= 50);
    let (status, avail) = get(&format!("{}/v1/availability?sku=SKU-00001", server.url), &key);
    assert_eq!(status, 200);
    assert!(avail["items"][0]["atp"].as_u64().unwrap() > 0);
    // The demo's carrier and node calendars answer promises for a cart in stock.
    let cart = serde_json::json!({"lines": [{"sku": avail["items"][0]["sku"], "quantity": 1}],
        "ship_to": {"lat": 39.95, "lon": -75.16}});
    let (status, promise) = post(&format!("{}/v1/promises", server.url), &key, &cart);
    assert_eq!(status, 200, "{promise}");
    let options = promise["options"].as_array().unwrap();
    assert!(options.iter().any(|o| o["option_id"].as_str().unwrap().starts_with("ship:standard:")), "{promise}");
    server.terminate();

    let again = start(&dir, "demo");
    assert!(again.lines.iter().any(|l| l.contains("already holds a network")), "{:?}", again.lines);
    let fresh = again.printed_key().expect("a fresh demo key on every demo start");
    assert_ne!(fresh, key);
    assert_eq!(get(&format!("{}/v1/nodes/DC-MEMPHIS", again.url), &fresh).0, 200);
    again.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn policy_check_accepts_the_example_and_names_every_problem_in_a_bad_file() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policies/default.toml");
    let ok = Command::new(BIN).args(["policy", "check", example]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let out = String::from_utf8(ok.stdout).unwrap();
    assert!(out.starts_with("policy default: valid, hash "), "{out}");
    assert!(out.contains("rule 1 \"premium\" when customer_tier in [\"premium\"]"), "{out}");

    let bad = std::env::temp_dir().join(format!("allot-bad-policy-{}.json", std::process::id()));
    std::fs::write(
        &bad,
        r#"{"rules": [{"name": "a", "constraints": {"max_nodes": 0}, "filters": {"node_types": ["mall"]}}]}"#,
    )
    .unwrap();
    let out = Command::new(BIN).args(["policy", "check"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("rules[0].filters.node_types[0]: \"mall\" is not one of"), "{err}");
    assert!(err.contains("rules[0].constraints.max_nodes: must be 1–10"), "{err}");
    assert!(err.contains("2 problem(s)"), "{err}");
    let _ = std::fs::remove_file(&bad);
}

fn post(url: &str, key: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let resp = client().post(url).bearer_auth(key).json(body).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    })
}

#[test]
fn generated_scenarios_are_deterministic_import_cleanly_and_their_orders_can_be_quoted() {
    let out = data_dir("scenario-files");
    let again = data_dir("scenario-files-again");
    for dir in [&out, &again] {
        let generated = Command::new(BIN)
            .args(["scenario", "generate", "--nodes", "40", "--skus", "200", "--orders", "30", "--seed", "9", "--out"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    }
    for file in ["nodes.json", "items.json", "inventory.json", "orders.jsonl", "carriers.json", "calendars.json"] {
        assert_eq!(std::fs::read(out.join(file)).unwrap(), std::fs::read(again.join(file)).unwrap(), "{file} differs");
    }
    let db = data_dir("scenario-db");
    for _ in 0..2 {
        // Importing twice is harmless: PUT semantics and full snapshots.
        let imp = Command::new(BIN).arg("import").arg(&out).arg("--data-dir").arg(&db).output().unwrap();
        assert!(imp.status.success(), "{}", String::from_utf8_lossy(&imp.stderr));
        let said = String::from_utf8_lossy(&imp.stderr);
        assert!(said.contains("imported 40 nodes") && said.contains("1 carrier(s) and 40 node calendars"), "{said}");
    }
    let server = start(&db, "serve");
    let key = Command::new(BIN).args(["keys", "create", "--role", "admin", "--data-dir"]).arg(&db).output().unwrap();
    let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    let orders = std::fs::read_to_string(out.join("orders.jsonl")).unwrap();
    let mut quoted = 0;
    for line in orders.lines().take(10) {
        let body: serde_json::Value = serde_json::from_str(line).unwrap();
        let (status, q) = post(&format!("{}/v1/sourcing/quote", server.url), &key, &body);
        assert_eq!(status, 200, "{q}");
        assert!(q["plan"]["total_cost_minor"].as_i64().unwrap() > 0);
        quoted += 1;
    }
    assert_eq!(quoted, 10);
    // The imported carriers and calendars answer promises on the generated network.
    let body: serde_json::Value = serde_json::from_str(orders.lines().next().unwrap()).unwrap();
    let lines: Vec<_> =
        body["lines"].as_array().unwrap().iter().map(|l| serde_json::json!({"sku": l["sku"], "quantity": 1})).collect();
    let cart = serde_json::json!({"lines": lines, "ship_to": body["ship_to"], "methods": ["ship"]});
    let (status, promise) = post(&format!("{}/v1/promises", server.url), &key, &cart);
    assert_eq!(status, 200, "{promise}");
    assert!(!promise["options"].as_array().unwrap().is_empty(), "{promise}");
    server.terminate();
    for dir in [&out, &again, &db] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// An HTTP client (after installing the TLS crypto provider reqwest is built without).
fn client() -> reqwest::Client {
    allot_app::install_tls_provider();
    reqwest::Client::new()
}

/// The process's resident set now and at its peak, in KiB (`/proc/<pid>/status`).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The attack of the hardening issue: many 60 MiB bodies at once with an
/// `Idempotency-Key`, from keys that may not write where they post (a node key placing
/// orders) or whose route takes 8 MiB at most (a channel key placing orders). The server's
/// peak memory stays within a bound (it went from 38 MB to 901 MB before: every body was
/// buffered up to the 64 MiB bulk limit, then copied again to hash it), nothing is stored,
/// and it still answers afterwards.
#[test]
fn many_large_bodies_at_once_leave_memory_bounded() {
    const BODY_BYTES: usize = 60 * 1024 * 1024;
    const AT_ONCE: usize = 10;
    let dir = data_dir("memory");
    let keys: Vec<String> = ["node:DC-EAST", "channel:web"]
        .iter()
        .map(|role| {
            let out =
                Command::new(BIN).args(["keys", "create", "--role", role, "--data-dir"]).arg(&dir).output().unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        })
        .collect();
    let server = start(&dir, "serve");
    let pid = server.child.id();
    let (before, _) = memory_kib(pid);
    let body: &'static [u8] = Box::leak(vec![b' '; BODY_BYTES].into_boxed_slice());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let statuses: Vec<Option<u16>> = rt.block_on(async {
        let client = client();
        let mut sends = tokio::task::JoinSet::new();
        for (i, key) in keys.iter().cycle().take(2 * AT_ONCE).enumerate() {
            let request = client
                .post(format!("{}/v1/orders", server.url))
                .bearer_auth(key)
                .header("content-type", "application/json")
                .header("idempotency-key", format!("attack-{i}"))
                .body(reqwest::Body::from(body));
            sends.spawn(async move { request.send().await.ok().map(|r| r.status().as_u16()) });
        }
        let mut statuses = Vec::new();
        while let Some(status) = sends.join_next().await {
            statuses.push(status.unwrap());
        }
        statuses
    });
    let (_, peak) = memory_kib(pid);
    // Refused early (403) or at the route's limit (413), or the connection closed on a body
    // the server would not read; never a server error.
    assert!(statuses.iter().flatten().all(|s| [403, 413].contains(s)), "{statuses:?}");
    let grown_mib = peak.saturating_sub(before) / 1024;
    eprintln!("peak memory grew by {grown_mib} MiB under the attack (from {} MiB)", before / 1024);
    assert!(grown_mib < 150, "peak memory grew by {grown_mib} MiB under the attack (from {} MiB)", before / 1024);
    let (status, _) = get(&format!("{}/healthz", server.url), "");
    assert_eq!(status, 200, "the server still answers");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
