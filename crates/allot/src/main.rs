//! The `allot` binary: `serve`, `demo`, `keys create`, `scenario generate`, `import`,
//! `policy check`, `load orders|promises`.
//!
//! Configuration comes from flags, each with an `ALLOT_*` environment variable. The
//! defaults run with no configuration at all: SQLite in `./allot-data/allot.db`, HTTP on
//! 127.0.0.1:8080.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use allot_api::ApiState;
use allot_app::{App, DbConfig, Role, SystemClock};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};

mod load;
mod scenario;

#[derive(Parser)]
#[command(name = "allot", version, about = "Allot: distributed order management")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve(ServeArgs),
    /// Load the demo network (4 DCs, 56 stores, 500 SKUs, a carrier, node calendars) if the
    /// database is empty, then serve.
    Demo(ServeArgs),
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Generate scenarios (network, catalog, stock, orders) as importable files.
    Scenario {
        #[command(subcommand)]
        command: ScenarioCommand,
    },
    /// Import a scenario directory (nodes.json, items.json, inventory.json) into the database.
    Import {
        dir: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Work with routing policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Load generators for the benchmarks (loopback only, bounded in count and time).
    Load {
        #[command(subcommand)]
        command: LoadCommand,
    },
}

#[derive(Subcommand)]
enum LoadCommand {
    /// POST /v1/orders with scenario carts (unique external ids); prints throughput and
    /// latency percentiles.
    Orders(LoadOpts),
    /// POST /v1/promises with scenario carts; prints throughput, latency percentiles and
    /// how many answers offered shipping.
    Promises(LoadOpts),
}

#[derive(Args)]
struct LoadOpts {
    /// The server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An admin API key.
    #[arg(long, env = "ALLOT_ADMIN_KEY", hide_env_values = true)]
    key: String,
    /// At most this many requests.
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// At most this long, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Open loop at this many requests per second (default: closed loop, as fast as answered).
    #[arg(long)]
    rate: Option<f64>,
    /// Lines per cart.
    #[arg(long, default_value_t = 3)]
    lines: usize,
    /// Seed of the cart stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Draw carts from the network `allot scenario generate --nodes N` writes (with
    /// `--skus` and `--network-seed`, as given to it) instead of the demo network.
    #[arg(long)]
    nodes: Option<usize>,
    #[arg(long, default_value_t = 500, requires = "nodes")]
    skus: usize,
    #[arg(long, default_value_t = 1, requires = "nodes")]
    network_seed: u64,
}

impl LoadOpts {
    fn into_args(self, target: load::Target) -> anyhow::Result<load::LoadArgs> {
        anyhow::ensure!(self.seconds > 0.0 && self.seconds <= 3600.0, "--seconds must be in (0, 3600]");
        let network = match self.nodes {
            Some(nodes) => scenario::spec(nodes, self.skus, self.network_seed)?,
            None => allot_core::scenario::ScenarioSpec::demo(),
        };
        Ok(load::LoadArgs {
            target,
            network,
            url: self.url,
            key: self.key,
            count: self.count,
            duration: std::time::Duration::from_secs_f64(self.seconds),
            concurrency: self.concurrency,
            rate: self.rate,
            lines: self.lines,
            seed: self.seed,
        })
    }
}

#[derive(Subcommand)]
enum ScenarioCommand {
    /// Write a deterministic scenario: DCs and stores in real US places, items with skewed
    /// popularity, stock skewed by popularity and node type, an order stream.
    Generate {
        #[arg(long, default_value_t = 60)]
        nodes: usize,
        #[arg(long, default_value_t = 500)]
        skus: usize,
        #[arg(long, default_value_t = 1000)]
        orders: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy file (.json or .toml) and print a summary; exit status 1 if invalid.
    Check {
        file: PathBuf,
        /// Policy name (default: the document's `name`, else the file name without extension).
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it once (only its SHA-256 digest is stored).
    Create {
        /// admin | channel:<channel_id> | node:<node_id>
        #[arg(long)]
        role: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Args, Clone)]
struct DbArgs {
    /// Directory of the embedded SQLite database (used unless a database URL is given).
    #[arg(long, env = "ALLOT_DATA_DIR", default_value = "./allot-data")]
    data_dir: PathBuf,
    /// PostgreSQL URL, e.g. postgres://user@host:5432/db. Overrides --data-dir.
    #[arg(long, env = "ALLOT_DATABASE_URL")]
    database_url: Option<String>,
}

impl DbArgs {
    fn config(&self) -> anyhow::Result<DbConfig> {
        match &self.database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(DbConfig::Postgres { url: url.clone(), schema: None })
            }
            Some(_) => anyhow::bail!("--database-url must start with postgres:// or postgresql://"),
            None => Ok(DbConfig::Sqlite { path: self.data_dir.join("allot.db") }),
        }
    }

    fn describe(&self) -> String {
        match &self.database_url {
            Some(_) => "PostgreSQL".to_owned(),
            None => format!("SQLite at {}", self.data_dir.join("allot.db").display()),
        }
    }
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ALLOT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Also accept plain-http webhook endpoints on 127.0.0.1, [::1] or localhost (tests,
    /// local use); otherwise endpoints must be https.
    #[arg(long, env = "ALLOT_ALLOW_INSECURE_WEBHOOKS")]
    allow_insecure_webhooks: bool,
    /// Let webhooks reach this private address range (CIDR, e.g. 10.1.2.0/24; repeat the
    /// flag or separate with commas), for on-premise receivers. Without it, deliveries go
    /// to public addresses only.
    #[arg(long, env = "ALLOT_WEBHOOK_ALLOW_PRIVATE", value_delimiter = ',')]
    webhook_allow_private: Vec<ipnet::IpNet>,
    /// Publish every event to NATS JetStream at this URL (subject `allot.<event type>`).
    #[arg(long, env = "ALLOT_NATS_URL")]
    nats_url: Option<String>,
    /// The JetStream stream the NATS relay publishes to (created if absent).
    #[arg(long, env = "ALLOT_NATS_STREAM", default_value = "ALLOT")]
    nats_stream: String,
    #[command(flatten)]
    db: DbArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    allot_app::install_tls_provider();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ALLOT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args, false).await,
            Command::Demo(args) => serve(args, true).await,
            Command::Keys { command: KeysCommand::Create { role, db } } => create_key(&role, &db).await,
            Command::Scenario { command: ScenarioCommand::Generate { nodes, skus, orders, seed, out } } => {
                scenario::write(nodes, skus, orders, seed, &out)
            }
            Command::Import { dir, db } => {
                let app = open_for(&db, allot_app::Work::None).await?;
                let result = scenario::import(&app, &dir).await;
                app.close().await;
                result
            }
            Command::Policy { command: PolicyCommand::Check { file, name } } => check_policy(&file, name.as_deref()),
            Command::Load { command: LoadCommand::Orders(opts) } => {
                load::run(opts.into_args(load::Target::Orders)?).await
            }
            Command::Load { command: LoadCommand::Promises(opts) } => {
                load::run(opts.into_args(load::Target::Promises)?).await
            }
        }
    })
}

/// Opens the database for a serving process (`serve`, `demo`): background work runs.
async fn open(db: &DbArgs) -> anyhow::Result<App> {
    open_for(db, allot_app::Work::Background).await
}

async fn open_for(db: &DbArgs, work: allot_app::Work) -> anyhow::Result<App> {
    App::open_with(&db.config()?, Arc::new(SystemClock), work)
        .await
        .with_context(|| format!("opening the database ({})", db.describe()))
}

async fn serve(args: ServeArgs, demo: bool) -> anyhow::Result<()> {
    let app = open(&args.db).await?;
    let mut allow_private = args.webhook_allow_private.clone();
    if args.allow_insecure_webhooks {
        // Local use: plain http to this machine, so its loopback addresses too.
        allow_private.extend(["127.0.0.0/8", "::1/128"].iter().filter_map(|n| n.parse::<ipnet::IpNet>().ok()));
    }
    app.set_webhook_options(allot_app::WebhookOptions {
        allow_insecure: args.allow_insecure_webhooks,
        egress: allot_app::EgressRules { allow_private, hosts: Vec::new() },
        ..Default::default()
    });
    if let Some(url) = &args.nats_url {
        app.start_nats_relay(allot_app::NatsOptions {
            stream: args.nats_stream.clone(),
            ..allot_app::NatsOptions::new(url)
        });
        eprintln!("publishing events to NATS JetStream at {url} (stream {})", args.nats_stream);
    }
    let configured = std::env::var("ALLOT_ADMIN_KEY").ok().filter(|k| !k.is_empty());
    let mut printed_key = app.bootstrap_admin(configured.as_deref()).await.context("preparing the admin key")?;

    if demo {
        let scenario = allot_core::scenario::generate(&allot_core::scenario::ScenarioSpec::demo());
        let summary = app.load_scenario_if_empty(&scenario).await.context("loading the demo network")?;
        if summary.loaded {
            eprintln!(
                "demo network loaded: {} nodes, {} items, {} inventory positions, {} carrier(s), {} node calendars",
                summary.nodes, summary.items, summary.positions, summary.carriers, summary.calendars
            );
        } else {
            eprintln!("the database already holds a network; demo data left as it is");
        }
        // The demo must always hand out a working key: a fresh one when the first-start
        // key was printed on an earlier run.
        if printed_key.is_none() && configured.is_none() {
            printed_key = Some(app.create_key(Role::Admin).await.context("creating a demo admin key")?);
        }
    }

    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let url = format!("http://{}", listener.local_addr()?);
    eprintln!("allot {} listening on {url} ({})", env!("CARGO_PKG_VERSION"), args.db.describe());
    match (&printed_key, &configured) {
        (Some(key), _) => {
            eprintln!("admin key (shown once, store it now): {}", key.secret);
            eprintln!("try: curl -H 'Authorization: Bearer {}' '{url}/v1/availability?sku=SKU-00001'", key.secret);
        }
        (None, Some(_)) => eprintln!("admin key: the value of ALLOT_ADMIN_KEY"),
        (None, None) => {
            eprintln!("admin key: as printed on first start (or create one with `allot keys create --role admin`)")
        }
    }
    allot_api::serve(listener, ApiState::new(app.clone()), shutdown_signal()).await.context("serving HTTP")?;
    app.close().await;
    eprintln!("allot stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. In-flight requests then finish before the process exits.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn create_key(role: &str, db: &DbArgs) -> anyhow::Result<()> {
    let role = Role::parse(role).map_err(anyhow::Error::msg)?;
    let app = open_for(db, allot_app::Work::None).await?;
    let key = app.create_key(role).await?;
    app.close().await;
    println!("{}", key.secret);
    eprintln!("created {} with role {} (shown once; only its digest is stored)", key.key_id, key.role.to_text());
    Ok(())
}

fn check_policy(file: &std::path::Path, name: Option<&str>) -> anyhow::Result<()> {
    use allot_app::policy_doc::{DocFormat, canonical_json_and_hash, parse_doc, to_policy};
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let format = match file.extension().and_then(|e| e.to_str()) {
        Some("toml") => DocFormat::Toml,
        _ => DocFormat::Json,
    };
    let report = |errors: Vec<allot_app::FieldError>| -> anyhow::Result<()> {
        for e in &errors {
            eprintln!(
                "{}: {}: {}",
                file.display(),
                if e.field.is_empty() { "(document)" } else { &e.field },
                e.message
            );
        }
        eprintln!("{} problem(s) in {}", errors.len(), file.display());
        // A finding, not a failure of the tool: no error chain, just the exit status.
        std::process::exit(1)
    };
    let doc = match parse_doc(&text, format) {
        Ok(doc) => doc,
        Err(errors) => return report(errors),
    };
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("policy");
    let name = name.map(str::to_owned).or_else(|| doc.name.clone()).unwrap_or_else(|| stem.to_owned());
    let policy = match to_policy(&name, &doc) {
        Ok(p) => p,
        Err(errors) => return report(errors),
    };
    let (_, hash) = canonical_json_and_hash(&policy);
    println!("policy {name}: valid, hash {hash}");
    let describe = |b: &allot_core::sourcing::RuleBody| {
        format!(
            "max_nodes {}, partial {}, backorder {}, {} shipping zone(s) up to {} km, split penalty {}, node types {}",
            b.constraints.max_nodes,
            b.constraints.allow_partial,
            b.constraints.allow_backorder,
            b.cost.shipping_zones.len(),
            b.cost.shipping_zones.last().map_or(0.0, |z| z.max_km),
            b.cost.split_penalty_minor,
            b.filters.node_types.as_ref().map_or("all".to_owned(), |t| t
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join("/")),
        )
    };
    for (i, rule) in policy.rules.iter().enumerate() {
        println!("  rule {} {:?} when {}: {}", i + 1, rule.name, rule.when.describe(), describe(&rule.body));
    }
    println!("  fallback: {}", describe(&policy.fallback));
    Ok(())
}
