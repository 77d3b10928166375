//! The Kubernetes manifests of `deploy/k8s/`: rendered by `kubectl
//! kustomize` (offline; no cluster runs here, so `kubectl apply
//! --dry-run=client` cannot resolve kinds), checked for the references
//! between them, and their shell scripts run for real: each completion index
//! of the generators' Indexed Job runs its segment against a local testbed
//! and a local exporter started with the Deployment's own command.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use volley_tests::*;

/// `deploy/k8s` rendered with a `tokens.env` written for the test (the
/// repository ships none), from a copy so the checkout stays clean.
fn docs() -> Vec<Value> {
    let dir = Scratch::new("k8s");
    let copy = dir.path("k8s");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(repo_root().join("deploy/k8s")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "tokens.env" {
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
    }
    std::fs::write(copy.join("tokens.env"), "exporter-token=k8s-test-token\ncontrol-token=k8s-control\n").unwrap();
    let text = kustomize(&copy).unwrap_or_else(|e| panic!("kubectl kustomize failed:\n{e}"));
    let docs: Vec<Value> = text
        .split("\n---\n")
        .map(|d| serde_yaml::from_str::<Value>(d).unwrap_or_else(|e| panic!("{e}:\n{d}")))
        .collect();
    assert_eq!(docs.len(), 6, "{text}");
    docs
}

fn kustomize(dir: &Path) -> Result<String, String> {
    let out = Command::new("kubectl").args(["kustomize"]).arg(dir).output();
    let out = out.expect("run kubectl (Debian's kubernetes-client; tests/run.sh installs it)");
    match out.status.success() {
        true => Ok(String::from_utf8(out.stdout).unwrap()),
        false => Err(describe(&out)),
    }
}

/// No usable token ships: rendering the manifests as they are in the
/// repository fails and names the file to write.
#[test]
fn the_manifests_ship_no_token() {
    let e = kustomize(&repo_root().join("deploy/k8s")).err();
    if repo_root().join("deploy/k8s/tokens.env").exists() {
        return; // a user's own tokens in this checkout
    }
    assert!(e.as_deref().is_some_and(|e| e.contains("tokens.env")), "{e:?}");
    let files = std::fs::read_dir(repo_root().join("deploy/k8s")).unwrap();
    for f in files.map(|f| f.unwrap().path()) {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("kind: Secret"), "{} defines a Secret with a fixed token", f.display());
    }
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} named {name}"))
}

fn container(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]["containers"][0]
}

/// Every configMap/secret a container or volume names exists, with the keys.
fn check_references(docs: &[Value], workload: &Value) {
    let pod = &workload["spec"]["template"]["spec"];
    let c = container(workload);
    for env in c["env"].as_array().into_iter().flatten() {
        let from = &env["valueFrom"];
        for (kind, field, data) in [("ConfigMap", "configMapKeyRef", "data"), ("Secret", "secretKeyRef", "data")] {
            let r = &from[field];
            if r.is_object() {
                let target = find(docs, kind, r["name"].as_str().unwrap());
                let key = r["key"].as_str().unwrap();
                assert!(target[data].get(key).is_some(), "{kind} {} has no key {key}", r["name"]);
            }
        }
    }
    for e in c["envFrom"].as_array().into_iter().flatten() {
        find(docs, "ConfigMap", e["configMapRef"]["name"].as_str().unwrap());
    }
    for v in pod["volumes"].as_array().into_iter().flatten() {
        if let Some(name) = v["configMap"]["name"].as_str() {
            find(docs, "ConfigMap", name);
        }
        let mounted = c["volumeMounts"].as_array().unwrap().iter().any(|m| m["name"] == v["name"]);
        assert!(mounted, "volume {} is never mounted", v["name"]);
    }
}

#[test]
fn the_manifests_reference_each_other_consistently() {
    let docs = docs();
    let settings = find(&docs, "ConfigMap", "volley-settings");
    let job = find(&docs, "Job", "volley-generators");
    let deployment = find(&docs, "Deployment", "volley-exporter");
    let service = find(&docs, "Service", "volley-exporter");
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    let n: u64 = settings["data"]["GENERATORS"].as_str().unwrap().parse().unwrap();
    assert_eq!(job["spec"]["completions"].as_u64(), Some(n), "completions must equal GENERATORS");
    assert_eq!(job["spec"]["parallelism"].as_u64(), Some(n), "all generators run at once (they wait for each other)");
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    check_references(&docs, job);
    check_references(&docs, deployment);
    // The Service selects the exporter's pods and exposes its named ports.
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "the Service selects {k}={v}, the pods are labelled {labels}");
    }
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        labels["app.kubernetes.io/name"]
    );
    let ports: BTreeMap<String, u64> = container(deployment)["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["containerPort"].as_u64().unwrap()))
        .collect();
    for p in service["spec"]["ports"].as_array().unwrap() {
        assert!(ports.contains_key(p["targetPort"].as_str().unwrap()), "service port {p} targets no container port");
    }
    assert_eq!(container(deployment)["readinessProbe"]["httpGet"]["path"], "/ready");
    // The generators reach the exporter through the Service's ingest port.
    let script = container(job)["args"][0].as_str().unwrap();
    assert!(script.contains(&format!("ws://volley-exporter:{}", ports["ingest"])), "{script}");
    // The scenario in the ConfigMap is a valid test (its flows, thresholds
    // and options parse): run it for one iteration.
    let scenario = find(&docs, "ConfigMap", "volley-scenario")["data"]["test.yaml"].as_str().unwrap().to_string();
    let target = Testbed::http();
    let dir = Scratch::new("k8s-scenario");
    let file = dir.write("test.yaml", &scenario);
    let out = Command::new(binary("volley"))
        .args(["run", "--quiet", "--no-summary", "--iterations", "1", "-e"])
        .arg(format!("TARGET_URL={}", target.url))
        .arg(&file)
        .output()
        .unwrap();
    // The testbed has no /api/checkout: 404s fail the thresholds (99), which
    // is a result; 104 would mean the file itself is wrong.
    assert_eq!(out.status.code(), Some(99), "{}", describe(&out));
}

#[test]
fn each_completion_index_runs_its_segment_and_together_the_whole_test() {
    let docs = docs();
    let settings = &find(&docs, "ConfigMap", "volley-settings")["data"];
    let n: usize = settings["GENERATORS"].as_str().unwrap().parse().unwrap();
    let test_id = settings["TEST_ID"].as_str().unwrap();
    let exporter_script =
        container(find(&docs, "Deployment", "volley-exporter"))["args"][0].as_str().unwrap().to_string();
    let job_script = container(find(&docs, "Job", "volley-generators"))["args"][0].as_str().unwrap().to_string();

    // The binaries under the names the scripts call, first on the PATH.
    let dir = Scratch::new("k8s-run");
    let bin = dir.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["volley", "volley-exporter"] {
        std::os::unix::fs::symlink(binary(name), bin.join(name)).unwrap();
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());

    // The exporter's own command line, with the ingest port on loopback (the
    // exporter prints where it listens) and the health port moved.
    let db = volley_tests::servers::Influxd::start();
    let health = format!("127.0.0.1:{}", closed_port());
    let exporter_cmd = exporter_script
        .replace("--listen 0.0.0.0:6565", "--listen 127.0.0.1:0 --stats-interval 0s")
        .replace("--health-listen 0.0.0.0:6566", &format!("--health-listen {health}"))
        .replace("--spool-dir /spool", &format!("--spool-dir {}", dir.path("spool").display()));
    assert_ne!(exporter_cmd, exporter_script);
    let mut exporter = Command::new("sh")
        .args(["-c", &exporter_cmd])
        .env("PATH", &path)
        .env("VOLLEY_EXPORTER_TOKEN", "k8s-test-token")
        .env("INFLUXDB_URL", format!("{}/volley", db.url))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path("exporter.log")).unwrap())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(exporter.stdout.take().unwrap()), &mut banner).unwrap();
    let url = banner.trim().rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("ws://127.0.0.1:"), "{banner}");

    // A short test instead of the ConfigMap's 13 minutes; the script itself
    // unchanged but for where the scenario and the exporter are.
    let target = Testbed::http();
    let scenario = dir.write(
        "test.json",
        &serde_json::json!({
            "options": {"scenarios": {"s": {"executor": "constant-arrival-rate", "rate": 100, "duration": "2s", "preAllocatedVUs": 8}},
                        "thresholds": {"http_req_failed": ["rate<0.01"]}},
            "flows": {"default": {"type": "http", "steps": [{"request": {"url": "{{env.TARGET_URL}}/?vu={{vu}}"}}]}}
        })
        .to_string(),
    );
    let script = job_script
        .replace("/scenario/test.yaml", scenario.to_str().unwrap())
        .replace("ws://volley-exporter:6565", &url)
        .replace("--quiet", &format!("--quiet --summary-export {}/summary-$i.json", dir.0.display()));
    let mut pods: Vec<_> = (0..n)
        .map(|i| {
            Command::new("sh")
                .args(["-c", &script])
                .env("PATH", &path)
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .env("GENERATORS", n.to_string())
                .env("TEST_ID", test_id)
                .env("TARGET_URL", &target.url)
                .env("VOLLEY_EXPORTER_TOKEN", "k8s-test-token")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path(&format!("pod-{i}.log"))).unwrap())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut total = 0;
    for (i, pod) in pods.iter_mut().enumerate() {
        let status = pod.wait().unwrap();
        let log = std::fs::read_to_string(dir.path(&format!("pod-{i}.log"))).unwrap();
        assert_eq!(status.code(), Some(0), "pod {i}: {log}");
        assert!(log.contains(&format!("{n} generators ready; starting together")), "pod {i}: {log}");
        let summary = read_json(&dir.path(&format!("summary-{i}.json")));
        total += export_count(&summary, "iterations");
    }
    // 100/s over 2 s, both ends: 201 iterations over the four pods.
    assert_eq!(total, 201);
    let _ = Command::new("kill").args(["-INT", &exporter.id().to_string()]).status();
    let _ = exporter.wait();
    let log = std::fs::read_to_string(dir.path("exporter.log")).unwrap();
    let written = db.scalar(&format!("SELECT sum(\"count\") FROM \"iterations\" WHERE \"testid\" = '{test_id}'"));
    assert_eq!(written as u64, 201, "{log}");
}
