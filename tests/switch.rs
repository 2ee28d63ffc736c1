//! Blue/green without socket activation (`[services.NAME.switch]`): a plain HTTP server that
//! binds its own port from $PORT, behind ferry's front, under a steady load of new TCP
//! connections from this machine while deploys and a rollback run.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{Project, demo_bin, host_table, remote};

/// A deploy.toml for the demo server as a blue/green service of `user`.
fn config(p: &Project, user: &str, listen: u16, ports: [u16; 2], extra: &str) -> String {
    std::fs::copy(demo_bin(), p.path("ferry-demo")).unwrap();
    format!(
        "{}[services.web]\nstart_timeout = \"20s\"\nsettle_time = \"0.5s\"\n{extra}\n\
         [services.web.run]\ncommand = \"bin/ferry-demo --listen 127.0.0.1:${{PORT}} --message message.txt\"\n\n\
         [services.web.switch]\nlisten = \"127.0.0.1:{listen}\"\nports = [{}, {}]\ndrain = \"1s\"\n\n\
         [services.web.health]\nhttp = \"http://127.0.0.1:{listen}/healthz\"\ntimeout = \"20s\"\ninterval = \"100ms\"\n\n\
         [[services.web.files]]\nsource = \"ferry-demo\"\ndest = \"bin/ferry-demo\"\nmode = \"0755\"\n\n\
         [[services.web.files]]\nsource = \"message.txt\"\ndest = \"message.txt\"\n",
        host_table("h", user),
        ports[0],
        ports[1],
    )
}

/// One GET / over a new TCP connection: the body, or what went wrong.
fn get(port: u16, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    if !text.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "answer: {:?}",
            text.lines().next().unwrap_or("(nothing)")
        ));
    }
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    ok: u64,
    failed: Vec<String>,
    latencies: Vec<Duration>,
}

/// A steady load of `rate` requests per second (each a new connection) against `port`,
/// until dropped.
struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, rate: u32) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        // Two clients, each paced to half the rate (a slow answer does not stop the other).
        let threads = (0..2)
            .map(|_| {
                let (stop, tally) = (stop.clone(), tally.clone());
                let every = Duration::from_secs(1) / (rate / 2);
                std::thread::spawn(move || {
                    let start = Instant::now();
                    let mut n = 0u32;
                    while !stop.load(Ordering::SeqCst) {
                        let t = Instant::now();
                        let r = get(port, "/");
                        let took = t.elapsed();
                        {
                            let mut tally = tally.lock().unwrap();
                            match r {
                                Ok(_) => tally.ok += 1,
                                Err(e) => tally.failed.push(e),
                            }
                            tally.latencies.push(took);
                        }
                        n += 1;
                        if let Some(wait) =
                            (start + every * n).checked_duration_since(Instant::now())
                        {
                            std::thread::sleep(wait);
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            tally,
            threads,
        }
    }

    fn finish(mut self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.tally.lock().unwrap())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn live(user: &str) -> String {
    remote()
        .ssh(user, "readlink ~/.local/share/ferry/web/live.sock")
        .trim()
        .to_string()
}

/// Deploys (each a new release) and a rollback under ~200 requests/s of new connections: not
/// one request fails, and the release served changes every time.
#[test]
fn deploys_and_a_rollback_under_load_lose_no_request() {
    let user = "ferry82";
    let (listen, ports) = (19820, [19821, 19822]);
    let r = remote();
    r.reset(user);
    let p = Project::new();
    p.config(&config(&p, user, listen, ports, ""));
    p.write("message.txt", "release 1\n");
    p.ferry(&["deploy"]).assert_code(0);
    assert_eq!(get(listen, "/").as_deref(), Ok("release 1\n"));
    assert_eq!(live(user), "blue.sock");

    let load = Load::start(listen, 200);
    let mut colours = vec![live(user)];
    for n in 2..=4 {
        p.write("message.txt", format!("release {n}\n"));
        let run = p.ferry(&["--output", "json", "deploy"]);
        run.assert_code(0);
        let steps: Vec<String> = run
            .events("step")
            .iter()
            .map(|s| s["step"].as_str().unwrap_or_default().to_string())
            .collect();
        assert!(steps.contains(&"switch".to_string()), "{run}");
        // The front moved before the deploy ended: the new release answers now.
        assert_eq!(get(listen, "/"), Ok(format!("release {n}\n")), "{run}");
        colours.push(live(user));
    }
    // The colours alternate; the old one was stopped once it drained.
    assert_eq!(
        colours,
        ["blue.sock", "green.sock", "blue.sock", "green.sock"]
    );
    assert_eq!(
        r.unit_prop(user, "web@blue.service", "ActiveState"),
        "inactive"
    );
    assert_eq!(
        r.unit_prop(user, "web@green.service", "ActiveState"),
        "active"
    );

    let run = p.ferry(&["rollback", "web"]);
    run.assert_code(0);
    assert_eq!(get(listen, "/").as_deref(), Ok("release 3\n"), "{run}");
    assert_eq!(live(user), "blue.sock");
    assert_eq!(
        r.unit_prop(user, "web@green.service", "ActiveState"),
        "inactive"
    );

    let mut tally = load.finish();
    tally.latencies.sort();
    let l = &tally.latencies;
    println!(
        "switch load: {} ok, {} failed; latency p50 {:?} p99 {:?} max {:?}",
        tally.ok,
        tally.failed.len(),
        percentile(l, 0.5),
        percentile(l, 0.99),
        l[l.len() - 1]
    );
    assert!(
        tally.failed.is_empty(),
        "failed requests: {:?}",
        tally.failed
    );
    assert!(tally.ok >= 200, "the load ran: {} requests", tally.ok);

    // `ferry status` says which colour is live.
    let st = p.ferry(&["--output", "json", "status"]);
    st.assert_code(0);
    assert!(st.stdout.contains("\"live\":\"blue\""), "{st}");
}

/// A new colour that does not come up is stopped and the front never moves: the old release
/// keeps serving every request, exit 4 (rolled back) as for any failed verification.
#[test]
fn a_failed_new_colour_is_stopped_and_nothing_switches() {
    let user = "ferry83";
    let (listen, ports) = (19830, [19831, 19832]);
    let r = remote();
    r.reset(user);
    let p = Project::new();
    p.config(&config(&p, user, listen, ports, ""));
    p.write("message.txt", "good\n");
    p.ferry(&["deploy"]).assert_code(0);
    let before = r.ssh(user, "readlink ~/.local/share/ferry/web/current");

    let load = Load::start(listen, 200);
    // The new release's server exits at once.
    let bad = config(&p, user, listen, ports, "").replace(
        "--message message.txt\"",
        "--message message.txt --fail-at-start\"",
    );
    p.config(&bad);
    p.write("message.txt", "bad\n");
    let run = p.ferry(&["deploy"]);
    run.assert_code(4);
    let tally = load.finish();
    assert!(
        tally.failed.is_empty(),
        "failed requests: {:?}",
        tally.failed
    );
    assert!(tally.ok > 0);

    assert_eq!(get(listen, "/").as_deref(), Ok("good\n"), "{run}");
    assert_eq!(live(user), "blue.sock");
    assert_eq!(
        r.ssh(user, "readlink ~/.local/share/ferry/web/current"),
        before
    );
    assert_ne!(
        r.unit_prop(user, "web@green.service", "ActiveState"),
        "active",
        "{run}"
    );
    assert_eq!(
        r.unit_prop(user, "web@blue.service", "ActiveState"),
        "active"
    );
}
