//! An acknowledged write survives `kill -9` of the server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::common::TestServer;

#[test]
fn every_acknowledged_write_survives_kill_9() {
    let mut s = TestServer::start();
    s.create_db("Durable");
    let url = s.url.clone();
    let acked: Arc<Mutex<Vec<(String, u64, u64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (url, acked, stop) = (url.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent =
                    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(5))).build().into();
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    // Rewrite a small set of ids so that updates, not only inserts, are checked.
                    let id = format!("w{w}/{}", n % 50);
                    let body = json!({"writer": w, "seq": n, "pad": "x".repeat(200)}).to_string();
                    let Ok(mut r) = agent.put(&format!("{url}/databases/Durable/docs/{id}")).send(body) else { break };
                    if r.status().as_u16() >= 300 {
                        break;
                    }
                    let answer: serde_json::Value = r.body_mut().read_json().unwrap_or_default();
                    let etag = answer["ETag"].as_u64().expect("etag");
                    acked.lock().expect("lock").push((id, n, etag));
                    n += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    s.kill9();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().expect("writer");
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() > 100, "the writers made progress ({} writes)", acked.len());

    s.restart();
    // The last acknowledged value of every id must be there (or a later one
    // whose acknowledgement was lost with the kill).
    let mut last: std::collections::HashMap<String, (u64, u64)> = std::collections::HashMap::new();
    for (id, seq, etag) in &acked {
        let e = last.entry(id.clone()).or_insert((*seq, *etag));
        if *etag > e.1 {
            *e = (*seq, *etag);
        }
    }
    for (id, (seq, etag)) in last {
        let (status, text) = s.call_raw("GET", &format!("/databases/Durable/docs/{id}"), None, &[]);
        assert_eq!(status, 200, "acknowledged document {id} is lost");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert!(doc["seq"].as_u64().expect("seq") >= seq, "{id}: acknowledged seq {seq} (etag {etag}) was rolled back to {doc}");
    }
    // Etags keep increasing after the restart.
    let max_etag = acked.iter().map(|a| a.2).max().unwrap_or(0);
    assert!(s.put_doc("/databases/Durable", "after", json!({})) > max_etag);
}

#[test]
fn graceful_stop_and_restart_keeps_everything() {
    let mut s = TestServer::start();
    s.create_db("Kept");
    for i in 0..20 {
        s.put_doc("/databases/Kept", &format!("k/{i}"), json!({"i": i}));
    }
    s.delete("/databases/Kept/docs/k/3");
    let before = s.all_docs("/databases/Kept");
    s.stop();
    s.restart();
    assert_eq!(s.all_docs("/databases/Kept"), before);
    assert_eq!(before.len(), 19);
}
