//! Test harness: starts the real server on port 0 with a fresh database per test, on
//! SQLite always and on PostgreSQL when `ALLOT_TEST_DATABASE_URL` is set (one schema per
//! test, dropped afterwards).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use allot_api::ApiState;
use allot_app::{App, Clock, DbConfig, SystemClock};
use allot_store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub app: App,
    /// The same database opened read-only: tests count what it holds, independently of
    /// the app that answered.
    pub store: Store,
    clock: Arc<dyn Clock>,
    /// Whether the app runs its background reservation sweep.
    sweep: bool,
    db: DbConfig,
    dir: Option<PathBuf>,
    pg: Option<(String, String)>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// A suite that needs a service this machine lacks says so and is skipped — unless
/// `ALLOT_REQUIRE_SERVICES=1` (CI sets it), where a skip would hide a suite that did not
/// run, so it fails instead.
pub fn skip(why: &str) {
    if std::env::var("ALLOT_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("ALLOT_REQUIRE_SERVICES=1 but {why}");
    }
    eprintln!("skipped: {why}");
}

/// Runs each named test body against both backends:
/// `backend_tests!(name, …)` expects `async fn name(s: TestServer)` in scope.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let s = $crate::common::TestServer::start($crate::common::Backend::Sqlite).await.unwrap();
                    super::$name(s).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(s) = $crate::common::TestServer::start($crate::common::Backend::Postgres).await else {
                        return;
                    };
                    super::$name(s).await;
                }
            )*
        }
    };
}

impl TestServer {
    /// `None` when the backend is PostgreSQL and no test database is configured.
    pub async fn start(backend: Backend) -> Option<TestServer> {
        allot_app::install_tls_provider();
        TestServer::start_with_clock(backend, Arc::new(SystemClock)).await
    }

    /// As [`TestServer::start`], with the app reading time from `clock`.
    pub async fn start_with_clock(backend: Backend, clock: Arc<dyn Clock>) -> Option<TestServer> {
        TestServer::start_with(backend, clock, true).await
    }

    /// As [`TestServer::start_with_clock`]; `sweep: false` turns the background
    /// reservation sweep off (the test expires reservations itself).
    pub async fn start_with(backend: Backend, clock: Arc<dyn Clock>, sweep: bool) -> Option<TestServer> {
        allot_app::install_tls_provider();
        let tag = uuid::Uuid::now_v7().simple().to_string();
        let (db, dir, pg) = match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("allot-test-{tag}"));
                (DbConfig::Sqlite { path: dir.join("allot.db") }, Some(dir), None)
            }
            Backend::Postgres => {
                let Some(url) = std::env::var("ALLOT_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
                    skip("ALLOT_TEST_DATABASE_URL is not set, PostgreSQL test not run");
                    return None;
                };
                let schema = format!("t_{tag}");
                (DbConfig::Postgres { url: url.clone(), schema: Some(schema.clone()) }, None, Some((url, schema)))
            }
        };
        let app = open(&db, clock.clone(), sweep).await;
        let mut s = TestServer {
            base: String::new(),
            client: reqwest::Client::new(),
            app,
            store: Store::open_reader(&db).await.unwrap(),
            clock,
            sweep,
            db,
            dir,
            pg,
            shutdown: None,
            task: None,
        };
        s.app.bootstrap_admin(Some(ADMIN_KEY)).await.unwrap();
        s.listen().await;
        Some(s)
    }

    /// A second server on the same database (PostgreSQL: the scale-out set-up).
    pub async fn replica(&self) -> TestServer {
        let mut r = TestServer {
            base: String::new(),
            client: reqwest::Client::new(),
            app: open(&self.db, self.clock.clone(), self.sweep).await,
            store: Store::open_reader(&self.db).await.unwrap(),
            clock: self.clock.clone(),
            sweep: self.sweep,
            db: self.db.clone(),
            dir: None,
            pg: None,
            shutdown: None,
            task: None,
        };
        r.listen().await;
        r
    }

    async fn listen(&mut self) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let state = ApiState::new(self.app.clone());
        self.task = Some(tokio::spawn(allot_api::serve(listener, state, async move {
            let _ = rx.await;
        })));
        self.shutdown = Some(tx);
    }

    /// Stops the server gracefully, closes the database and starts anew on the same data:
    /// whatever was acknowledged must still be there.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.app = open(&self.db, self.clock.clone(), self.sweep).await;
        self.listen().await;
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self.app.close().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.client.get(self.url(path)).bearer_auth(ADMIN_KEY)).await
    }

    pub async fn get_as(&self, key: &str, path: &str) -> (StatusCode, Value) {
        self.send(self.client.get(self.url(path)).bearer_auth(key)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.put(self.url(path)).bearer_auth(ADMIN_KEY).json(&body)).await
    }

    pub async fn put_as(&self, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.put(self.url(path)).bearer_auth(key).json(&body)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.post(self.url(path)).bearer_auth(ADMIN_KEY).json(&body)).await
    }

    /// Waits until every committed event can be served by `GET /v1/events` (on
    /// PostgreSQL an event is served once every older transaction in the cluster has ended;
    /// other tests' transactions can hold that back for a moment).
    pub async fn settle_events(&self) {
        for _ in 0..200 {
            let store = &self.store;
            if store.events_in_flight().await.unwrap() == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("events did not become visible");
    }

    pub async fn post_as(&self, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.post(self.url(path)).bearer_auth(key).json(&body)).await
    }

    /// A POST without a body (actions whose body is optional).
    pub async fn post_empty(&self, key: &str, path: &str) -> (StatusCode, Value) {
        self.send(self.client.post(self.url(path)).bearer_auth(key)).await
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, value)
    }

    /// A small network: two DCs, one store, three items.
    pub async fn seed(&self) {
        for (id, body) in [
            ("DC-EAST", node_json("dc", 40.6084, -75.4902, "America/New_York", &["ship", "returns"])),
            ("DC-WEST", node_json("dc", 34.0633, -117.6509, "America/Los_Angeles", &["ship"])),
            ("ST-CHI", node_json("store", 41.85, -87.65, "America/Chicago", &["ship", "pickup", "curbside"])),
        ] {
            let (status, _) = self.put(&format!("/v1/nodes/{id}"), body).await;
            assert_eq!(status, StatusCode::CREATED, "seeding node {id}");
        }
        for sku in ["SKU-1", "SKU-2", "SKU-3"] {
            let (status, _) =
                self.put(&format!("/v1/items/{sku}"), json!({"name": format!("Item {sku}"), "weight_g": 500})).await;
            assert_eq!(status, StatusCode::CREATED, "seeding item {sku}");
        }
    }
}

pub fn node_json(kind: &str, lat: f64, lon: f64, tz: &str, caps: &[&str]) -> Value {
    json!({
        "type": kind, "name": format!("{kind} node"), "location": {"lat": lat, "lon": lon},
        "time_zone": tz, "capabilities": caps, "status": "active",
        "capacity": {"orders_per_day": 1000, "units_per_day": null},
        "costs": {"per_order_minor": 150, "per_unit_minor": 25}, "currency": "USD"
    })
}

async fn open(db: &DbConfig, clock: Arc<dyn Clock>, sweep: bool) -> App {
    let work = if sweep { allot_app::Work::Background } else { allot_app::Work::Foreground };
    App::open_with(db, clock, work).await.unwrap()
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((url, schema)) = self.pg.take() {
            // Drop the test's schema from a thread of its own (Drop cannot await).
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async move {
                    if let Ok(pool) = sqlx::PgPool::connect(&url).await {
                        let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}
