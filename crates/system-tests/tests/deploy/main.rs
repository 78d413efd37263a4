//! The deployment files agree with the repository and with each other:
//! what the Dockerfile copies exists (and is not ignored), what compose
//! mounts and reads exists, every variable they and fly.toml set is one the
//! services read, ports line up (API 8080, orchestrator 8090, Prometheus
//! 9090, Grafana 3000, Postgres 5432), fly.toml runs both process groups
//! from one app with a health check each, and the Makefile drives compose.
//! (No Docker engine is needed: nothing here builds or starts a container.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn exists(path: &str) -> bool {
    repo().join(path).exists()
}

/// A YAML file with its `<<` merge keys applied, as JSON.
fn yaml(path: &str) -> Value {
    let mut value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"));
    value.apply_merge().unwrap();
    serde_json::to_value(value).unwrap()
}

fn compose() -> Value {
    yaml("docker-compose.yml")
}

/// fly.toml, as JSON.
fn fly() -> Value {
    let table: toml::Table = toml::from_str(&read("fly.toml")).unwrap_or_else(|e| panic!("fly.toml is not TOML: {e}"));
    serde_json::to_value(table).unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The text between each `open` and the next `"` in `source`.
fn quoted_after(source: &str, open: &str) -> Vec<String> {
    source
        .match_indices(open)
        .filter_map(|(at, _)| {
            let rest = &source[at + open.len()..];
            rest.find('"').map(|end| rest[..end].to_string())
        })
        .collect()
}

/// Every environment variable the services read: the names the typed
/// configuration reads (`r.get("...")`, `r.secret`, `r.url`, `r.parse`,
/// `r.bool`, the service secrets, in crates/core/src/config/, its tests
/// left out; the provider variables of crates/core/src/providers.rs: every
/// upper-case string literal of those files) and direct
/// `std::env::var("...")` reads.
fn variables_read() -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    let config = rust_files(&repo().join("crates/core/src/config"));
    assert!(!config.is_empty(), "crates/core/src/config/ holds the configuration");
    let files = config
        .into_iter()
        .filter(|file| !file.ends_with("tests.rs"))
        .chain([repo().join("crates/core/src/providers.rs")]);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        vars.extend(quoted_after(&text, "\"").into_iter().filter(|s| {
            s.len() > 3
                && s.starts_with(|c: char| c.is_ascii_uppercase())
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        }));
    }
    for krate in std::fs::read_dir(repo().join("crates")).unwrap() {
        let src = krate.unwrap().path().join("src");
        for source in rust_files(&src) {
            let text = std::fs::read_to_string(source).unwrap();
            vars.extend(quoted_after(&text, "std::env::var(\""));
        }
    }
    // Read by tracing-subscriber's EnvFilter, not by name in this code.
    vars.insert("RUST_LOG".into());
    assert!(
        vars.contains("DATABASE_URL") && vars.contains("KIEAI_SIGNING_SECRET"),
        "{vars:?}"
    );
    vars
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

fn dockerignore() -> Vec<String> {
    read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// `.dockerignore`'s simple patterns: a name, `*` within a name, `**/` prefix.
fn ignored(path: &str, patterns: &[String]) -> bool {
    fn glob(pattern: &str, name: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == name,
            Some((prefix, suffix)) => {
                name.len() >= prefix.len() + suffix.len() && name.starts_with(prefix) && name.ends_with(suffix)
            }
        }
    }
    let path = path.trim_start_matches("./").trim_end_matches('/');
    patterns.iter().filter(|p| !p.starts_with('!')).any(|pattern| {
        let pattern = pattern.trim_start_matches("./").trim_end_matches('/');
        match pattern.strip_prefix("**/") {
            Some(any) => path.split('/').any(|part| glob(any, part)),
            None => glob(pattern, path) || path.starts_with(&format!("{pattern}/")),
        }
    })
}

#[test]
fn the_dockerfile_copies_files_that_exist_and_are_not_ignored() {
    let dockerfile = read("Dockerfile");
    let ignore = dockerignore();
    let mut copied = Vec::new();
    for line in dockerfile.lines().map(str::trim) {
        let Some(args) = line.strip_prefix("COPY ") else {
            continue;
        };
        let args: Vec<&str> = args.split_whitespace().filter(|a| !a.starts_with("--")).collect();
        if line.contains("--from=") {
            continue;
        }
        let (destination, sources) = args.split_last().unwrap();
        assert!(!destination.is_empty());
        for source in sources {
            assert!(exists(source), "Dockerfile copies {source}, which does not exist");
            assert!(
                !ignored(source, &ignore),
                "Dockerfile copies {source}, which .dockerignore leaves out"
            );
            copied.push(source.to_string());
        }
    }
    // What the build needs: the workspace, its crates, the migrations
    // `sqlx::migrate!` embeds and the projects crates/core/build.rs embeds.
    for needed in ["Cargo.toml", "Cargo.lock", "crates", "migrations", "projects"] {
        assert!(
            copied.iter().any(|c| c == needed),
            "the Dockerfile does not copy {needed}"
        );
    }
    for secret in [".env", ".env.development", ".env.production", "target", "data"] {
        assert!(
            ignored(secret, &ignore),
            ".dockerignore lets {secret} into the build context"
        );
    }
    assert!(dockerfile.contains("--bin mw"), "the image builds the mw binary");
    assert!(dockerfile.contains("ENTRYPOINT [\"mw\"]"), "the entrypoint is mw");
    assert!(
        dockerfile.contains("CMD [\"serve\", \"api\"]"),
        "the default command serves the API"
    );
    let exposed: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("EXPOSE "))
        .flat_map(str::split_whitespace)
        .collect();
    assert_eq!(exposed, ["8080", "8090"]);
}

#[test]
fn compose_runs_the_five_services_with_health_checks() {
    let compose = compose();
    let services = compose["services"].as_object().unwrap();
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["api", "orchestrator", "postgres", "prometheus", "grafana"])
    );
    for name in names {
        let test = &services[name]["healthcheck"]["test"];
        assert!(test.is_array() || test.is_string(), "{name} has no healthcheck");
    }
    for (service, command, port) in [("api", "api", 8080), ("orchestrator", "orchestrator", 8090)] {
        let s = &services[service];
        assert_eq!(strings(&s["command"]), ["serve", command], "{service}'s command");
        assert_eq!(s["build"], ".", "{service} builds the repo's Dockerfile");
        let check = strings(&s["healthcheck"]["test"]).join(" ");
        assert!(
            check.contains(&format!("/dev/tcp/127.0.0.1/{port}")) && check.contains("GET /health"),
            "{service}'s healthcheck asks its own /health on {port}: {check}"
        );
        assert!(
            check.contains("\"status\":\"ok\""),
            "{service}'s healthcheck looks for the health answer"
        );
    }
    let postgres = strings(&services["postgres"]["healthcheck"]["test"]).join(" ");
    assert!(postgres.contains("pg_isready"), "{postgres}");
    let prometheus = strings(&services["prometheus"]["healthcheck"]["test"]).join(" ");
    assert!(prometheus.contains("9090/-/healthy"), "{prometheus}");
    let grafana = strings(&services["grafana"]["healthcheck"]["test"]).join(" ");
    assert!(grafana.contains("3000/api/health"), "{grafana}");
    // The API waits for the database; both services for a healthy Postgres.
    for service in ["api", "orchestrator"] {
        assert_eq!(
            services[service]["depends_on"]["postgres"]["condition"],
            "service_healthy"
        );
    }
}

#[test]
fn compose_references_files_that_exist() {
    let compose = compose();
    let services = compose["services"].as_object().unwrap();
    let named_volumes: BTreeSet<&str> = compose["volumes"]
        .as_object()
        .map(|v| v.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for (name, service) in services {
        if let Some(context) = service["build"].as_str() {
            assert!(exists(context), "{name}: build context {context}");
            assert!(
                repo().join(context).join("Dockerfile").exists(),
                "{name}: no Dockerfile in {context}"
            );
        }
        let env_files = match &service["env_file"] {
            Value::String(file) => vec![file.clone()],
            other => strings(other),
        };
        for file in env_files {
            assert!(exists(&file), "{name}: env_file {file}");
        }
        for volume in strings(&service["volumes"]) {
            let host = volume.split(':').next().unwrap();
            if host.starts_with('.') || host.starts_with('/') {
                assert!(
                    exists(host),
                    "{name}: volume {volume} mounts {host}, which does not exist"
                );
            } else {
                assert!(named_volumes.contains(host), "{name}: volume {host} is not declared");
            }
        }
    }
    // Prometheus gets its config and the alerts next to it (rule_files are
    // relative to the config file).
    let mounts = strings(&services["prometheus"]["volumes"]);
    let config: Value = yaml("deploy/prometheus/prometheus.yml");
    assert!(
        mounts
            .iter()
            .any(|m| m.starts_with("./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml"))
    );
    for rules in strings(&config["rule_files"]) {
        assert!(exists(&format!("deploy/prometheus/{rules}")), "rule file {rules}");
        assert!(
            mounts.iter().any(|m| m.contains(&format!(":/etc/prometheus/{rules}"))),
            "prometheus.yml loads {rules}; compose must mount it next to the config"
        );
    }
    for rules in strings(&yaml("deploy/prometheus/alerts_test.yml")["rule_files"]) {
        assert!(
            exists(&format!("deploy/prometheus/{rules}")),
            "alerts_test.yml's rule file {rules}"
        );
    }
    // Grafana: provisioning, the dashboards folder the provider reads, and
    // the home dashboard inside it.
    let grafana = &services["grafana"];
    let mounts = strings(&grafana["volumes"]);
    let mounted = |container: &str| -> String {
        let mount = mounts
            .iter()
            .find(|m| m.split(':').nth(1) == Some(container))
            .unwrap_or_else(|| panic!("grafana mounts nothing at {container}"));
        mount.split(':').next().unwrap().trim_start_matches("./").to_string()
    };
    let provisioning = mounted("/etc/grafana/provisioning");
    let provider = yaml(&format!("{provisioning}/dashboards/dashboards.yml"));
    let dashboards_path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    let dashboards = mounted(&dashboards_path);
    let home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        .as_str()
        .unwrap();
    let home_file = home
        .strip_prefix(&format!("{dashboards_path}/"))
        .expect("the home dashboard is provisioned");
    let dashboard: Value = serde_json::from_str(&read(&format!("{dashboards}/{home_file}"))).unwrap();
    assert_eq!(dashboard["uid"], "myloware-orchestration");
    assert_eq!(dashboard["title"], "MyloWare Orchestration");
    let datasources = yaml(&format!("{provisioning}/datasources/prometheus.yml"));
    assert_eq!(datasources["datasources"][0]["uid"], "prometheus");
    assert_eq!(datasources["datasources"][0]["url"], "http://prometheus:9090");
}

#[test]
fn every_variable_compose_and_fly_set_is_read_by_the_services() {
    let read_vars = variables_read();
    let compose = compose();
    let env_file: Vec<String> = read(".env.development")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split('=').next().unwrap().trim().to_string())
        .collect();
    for var in &env_file {
        assert!(
            read_vars.contains(var),
            ".env.development sets {var}, which no service reads"
        );
    }
    for service in ["api", "orchestrator"] {
        let environment = compose["services"][service]["environment"].as_object().unwrap();
        for var in environment.keys() {
            assert!(
                read_vars.contains(var),
                "compose sets {var} for {service}, which no service reads"
            );
        }
    }
    let fly = fly();
    for var in fly["env"].as_object().unwrap().keys() {
        assert!(
            read_vars.contains(var),
            "fly.toml's [env] sets {var}, which no service reads"
        );
    }
    // The documented `fly secrets set NAME=...` lines name real variables.
    for line in read("fly.toml").lines().filter(|l| l.trim_start().starts_with('#')) {
        let words = line.trim_start_matches(['#', ' ']).split_whitespace();
        for word in words {
            if let Some((name, _)) = word.split_once('=')
                && !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                assert!(
                    read_vars.contains(name),
                    "fly.toml documents {name}, which no service reads"
                );
            }
        }
    }
}

/// The README's section after `heading`, up to the next section.
fn section<'a>(readme: &'a str, heading: &str) -> &'a str {
    let section = readme
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("README.md has no {heading:?} section"));
    &section[..section.find("\n## ").unwrap_or(section.len())]
}

#[test]
fn fly_toml_documents_every_configuration_variable() {
    let fly_text = read("fly.toml");
    let readme = read("README.md");
    let table = section(&readme, "## Configuration");
    let mut documented: BTreeSet<String> = BTreeSet::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = row.split('|').nth(1).unwrap();
        for name in first_cell.split('`').skip(1).step_by(2) {
            documented.insert(name.to_string());
        }
    }
    // The runbook's variables (../shared/seed/runbook-live-ops.md, section 1 and 3).
    for var in [
        "API_KEY",
        "KIEAI_API_KEY",
        "KIEAI_SIGNING_SECRET",
        "SHOTSTACK_API_KEY",
        "UPLOAD_POST_API_KEY",
        "HITL_SECRET",
        "USE_MOCK_PROVIDERS",
        "LANGSMITH_API_KEY",
        "LANGSMITH_PROJECT",
        "HITL_TOKEN_EXPIRY_HOURS",
    ] {
        documented.insert(var.to_string());
    }
    assert!(documented.len() > 30, "README's table was read: {documented:?}");
    let missing: Vec<&String> = documented
        .iter()
        .filter(|var| {
            !fly_text
                .match_indices(var.as_str())
                .any(|(at, _)| !fly_text[at + var.len()..].starts_with(|c: char| c.is_ascii_uppercase() || c == '_'))
        })
        .collect();
    assert!(missing.is_empty(), "fly.toml does not mention {missing:?}");
}

#[test]
fn ports_line_up_across_compose_prometheus_and_fly() {
    let compose = compose();
    let services = &compose["services"];
    let published = |service: &str| -> Vec<(String, String)> {
        strings(&services[service]["ports"])
            .iter()
            .map(|p| {
                let mut parts: Vec<&str> = p.rsplitn(2, ':').collect();
                parts.reverse();
                let host = parts[0].rsplit(':').next().unwrap().to_string();
                (host, parts[1].to_string())
            })
            .collect()
    };
    assert_eq!(published("api"), [("8080".to_string(), "8080".to_string())]);
    assert_eq!(published("orchestrator"), [], "the orchestrator is private");
    assert_eq!(published("prometheus"), [("9090".to_string(), "9090".to_string())]);
    assert_eq!(published("grafana"), [("3000".to_string(), "3000".to_string())]);
    assert_eq!(published("postgres")[0].1, "5432");
    // The stack runs with the public development keys: nothing is
    // published beyond this machine.
    for service in ["api", "prometheus", "grafana", "postgres"] {
        for port in strings(&services[service]["ports"]) {
            assert!(
                port.starts_with("127.0.0.1:"),
                "{service} publishes {port} on every interface"
            );
        }
    }

    // The services reach each other and the database by compose name.
    let env = &services["api"]["environment"];
    assert_eq!(env["ORCHESTRATOR_URL"], "http://orchestrator:8090");
    assert_eq!(env["API_URL"], "http://api:8080");
    let postgres = &services["postgres"]["environment"];
    let database_url = format!(
        "postgres://{}:{}@postgres:5432/{}",
        postgres["POSTGRES_USER"].as_str().unwrap(),
        postgres["POSTGRES_PASSWORD"].as_str().unwrap(),
        postgres["POSTGRES_DB"].as_str().unwrap()
    );
    for service in ["api", "orchestrator"] {
        assert_eq!(services[service]["environment"]["DATABASE_URL"], database_url.as_str());
        assert_eq!(
            services[service]["environment"]["BIND_HOST"], "0.0.0.0",
            "{service} must listen beyond the container's loopback"
        );
    }
    // .env.development's ports are the ones published.
    let dev = read(".env.development");
    assert!(dev.contains("\nAPI_PORT=8080\n") && dev.contains("\nORCHESTRATOR_PORT=8090\n"));

    // Prometheus scrapes both services by compose name and port.
    let prometheus = yaml("deploy/prometheus/prometheus.yml");
    let mut targets = BTreeSet::new();
    for job in prometheus["scrape_configs"].as_array().unwrap() {
        assert_eq!(job["metrics_path"].as_str().unwrap_or("/metrics"), "/metrics");
        for config in job["static_configs"].as_array().unwrap() {
            targets.extend(strings(&config["targets"]));
        }
    }
    assert!(
        targets.contains("api:8080") && targets.contains("orchestrator:8090"),
        "{targets:?}"
    );
    let datasources = yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    assert_eq!(datasources["datasources"][0]["url"], "http://prometheus:9090");

    // Fly: the same ports.
    let fly = fly();
    assert_eq!(fly["env"]["API_PORT"], "8080");
    assert_eq!(fly["env"]["ORCHESTRATOR_PORT"], "8090");
}

#[test]
fn fly_toml_is_one_app_with_both_process_groups() {
    assert!(
        !exists("deploy/fly.orchestrator.toml"),
        "the orchestrator is a process group of fly.toml, not a second app"
    );
    let fly = fly();
    let app = fly["app"].as_str().unwrap();
    assert_eq!(app, "myloware");
    assert!(exists(fly["build"]["dockerfile"].as_str().unwrap()));

    let processes = fly["processes"].as_object().expect("[processes]");
    assert_eq!(processes.len(), 2, "{processes:?}");
    assert_eq!(processes["api"], "serve api");
    assert_eq!(processes["orchestrator"], "serve orchestrator");

    // Public HTTPS for the API only, checked on /health.
    let http = &fly["http_service"];
    assert_eq!(strings(&http["processes"]), ["api"]);
    assert_eq!(http["internal_port"], 8080);
    assert_eq!(http["force_https"], true);
    let checks = http["checks"].as_array().expect("[[http_service.checks]]");
    assert!(checks.iter().any(|c| c["path"] == "/health" && c["method"] == "GET"));
    assert!(fly.get("services").is_none(), "no other public service");

    // The orchestrator: a machine check on its own port.
    let orchestrator_checks: Vec<&Value> = fly["checks"]
        .as_object()
        .expect("[checks]")
        .values()
        .filter(|c| strings(&c["processes"]) == ["orchestrator"])
        .collect();
    assert_eq!(orchestrator_checks.len(), 1, "one check for the orchestrator process");
    let check = orchestrator_checks[0];
    assert_eq!(check["type"], "http");
    assert_eq!(check["port"], 8090);
    assert_eq!(check["path"], "/health");

    // Both groups' /metrics are scraped, each on its port.
    let metrics = fly["metrics"].as_array().expect("[[metrics]]");
    for (process, port) in [("api", 8080), ("orchestrator", 8090)] {
        assert!(
            metrics
                .iter()
                .any(|m| strings(&m["processes"]) == [process] && m["port"] == port && m["path"] == "/metrics"),
            "[[metrics]] for {process} on {port}"
        );
    }

    // Production settings and the private network between the groups.
    let env = fly["env"].as_object().unwrap();
    assert_eq!(env["ENVIRONMENT"], "production");
    assert_eq!(env["LOG_FORMAT"], "json");
    assert_eq!(env["BIND_HOST"], "::");
    assert_eq!(
        env["ORCHESTRATOR_URL"],
        format!("http://orchestrator.process.{app}.internal:8090").as_str()
    );
    assert_eq!(
        env["API_URL"],
        format!("http://api.process.{app}.internal:8080").as_str()
    );
    assert_eq!(env["PUBLIC_BASE_URL"], format!("https://{app}.fly.dev").as_str());
    for secret in ["API_KEY", "HITL_SECRET", "DATABASE_URL", "OPENAI_API_KEY"] {
        assert!(
            !env.contains_key(secret),
            "{secret} belongs in `fly secrets`, not [env]"
        );
    }
}

#[test]
fn docs_describe_the_one_fly_app() {
    let readme = read("README.md");
    let deploy = section(&readme, "\n## Deploy");
    for needed in [
        "fly launch",
        "fly secrets set",
        "fly deploy",
        "fly scale count api=",
        "fly checks list",
        "/health",
    ] {
        assert!(
            deploy.contains(needed),
            "README's Deploy section does not mention {needed:?}"
        );
    }
    for doc in [readme.as_str(), &read("deploy/README.md")] {
        assert!(
            !doc.contains("fly.orchestrator.toml"),
            "a doc still refers to the removed second app"
        );
    }
}

#[test]
fn the_makefile_drives_compose() {
    let makefile = read("Makefile");
    assert!(makefile.contains("COMPOSE ?= docker compose"));
    for target in ["up", "down", "logs"] {
        let recipe = makefile
            .split(&format!("\n{target}:\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("the Makefile has no {target} target"));
        let first = recipe.lines().next().unwrap();
        assert!(
            first.starts_with("\t$(COMPOSE) ") && first.contains(&format!("$(COMPOSE) {target}")),
            "make {target} runs `docker compose {target}`: {first:?}"
        );
    }
}

#[test]
fn the_dashboard_is_well_formed() {
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/dashboards/myloware-orchestration.json")).unwrap();
    assert_eq!(dashboard["uid"], "myloware-orchestration");
    let variables: BTreeSet<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, BTreeSet::from(["runId", "service"]));
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(
            ids.insert(panel["id"].as_i64().unwrap()),
            "duplicate panel id {}",
            panel["id"]
        );
        let pos = &panel["gridPos"];
        let (x, y, w, h) = (
            pos["x"].as_i64().unwrap(),
            pos["y"].as_i64().unwrap(),
            pos["w"].as_i64().unwrap(),
            pos["h"].as_i64().unwrap(),
        );
        assert!(x + w <= 24, "panel {} is wider than the grid", panel["title"]);
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            assert!(cells.insert(cell), "panel {} overlaps another", panel["title"]);
        }
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "prometheus", "panel {}", panel["title"]);
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "prometheus", "panel {}", panel["title"]);
            assert!(target["expr"].as_str().is_some_and(|e| !e.trim().is_empty()));
        }
    }
}

/// Compose keeps the orchestrator private as Fly does: no published port,
/// and every network it is on is internal and shared only with the
/// services that call it (the API, Prometheus) or that it calls (Postgres),
/// except one way out that no other service is on. The images and fly.toml
/// say where to listen (the services default to loopback).
#[test]
fn the_orchestrator_is_private_and_every_deployment_sets_bind_host() {
    let compose = compose();
    let services = compose["services"].as_object().unwrap();
    let orchestrator = &services["orchestrator"];
    assert!(
        orchestrator.get("ports").is_none(),
        "the orchestrator publishes {}",
        orchestrator["ports"]
    );
    let networks_of = |service: &Value| -> Vec<String> {
        match &service["networks"] {
            Value::Object(map) => map.keys().cloned().collect(),
            Value::Null => vec!["default".to_string()],
            other => strings(other),
        }
    };
    let declared = compose["networks"].as_object().expect("networks are declared");
    for network in networks_of(orchestrator) {
        assert_ne!(network, "default", "the orchestrator is on the default network");
        let sharing: BTreeSet<&str> = services
            .iter()
            .filter(|(name, service)| *name != "orchestrator" && networks_of(service).contains(&network))
            .map(|(name, _)| name.as_str())
            .collect();
        if declared[&network]["internal"] == true {
            assert!(
                sharing.is_subset(&BTreeSet::from(["api", "prometheus", "postgres"])),
                "{network} lets {sharing:?} reach the orchestrator"
            );
        } else {
            assert!(
                sharing.is_empty(),
                "{network} (not internal) is shared with {sharing:?}"
            );
        }
    }
    for needs in ["api", "prometheus"] {
        assert!(
            networks_of(&services[needs])
                .iter()
                .any(|n| networks_of(orchestrator).contains(n) && declared[n]["internal"] == true),
            "{needs} cannot reach the orchestrator"
        );
    }
    assert!(
        networks_of(&services["grafana"])
            .iter()
            .all(|n| !networks_of(orchestrator).contains(n)),
        "grafana can reach the orchestrator"
    );

    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.lines().any(|l| l.trim().starts_with("BIND_HOST=0.0.0.0")),
        "the Dockerfile sets BIND_HOST explicitly"
    );
    assert_eq!(fly()["env"]["BIND_HOST"], "::", "fly.toml sets BIND_HOST explicitly");
}
