//! A chaos TCP proxy on loopback: in front of a service or of Postgres, it
//! cuts every open connection at will ([`Proxy::cut`]), or blocks the way
//! altogether ([`Proxy::block`]: open connections dropped, new ones refused)
//! as if the other side were down.

use std::sync::Arc;

use tokio::sync::watch;

#[derive(Clone)]
pub struct Proxy {
    pub port: u16,
    /// `(blocked, generation)`: a new generation drops open connections.
    state: Arc<watch::Sender<(bool, u64)>>,
}

impl Proxy {
    /// A proxy to `127.0.0.1:target`.
    pub async fn start(target: u16) -> Proxy {
        Proxy::balance(vec![target]).await
    }

    /// A load balancer in front of `targets` (at least one): each new
    /// connection goes to the next target in turn, or, when that one
    /// refuses (its process is down), to the one after.
    pub async fn balance(targets: Vec<u16>) -> Proxy {
        assert!(!targets.is_empty(), "a proxy needs a target");
        let targets = Arc::new(targets);
        let turn = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = watch::channel((false, 0u64));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let (blocked, generation) = *rx.borrow();
                if blocked {
                    continue;
                }
                let mut changed = rx.clone();
                let first = turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let targets = targets.clone();
                tokio::spawn(async move {
                    let mut outbound = None;
                    for i in 0..targets.len() {
                        let target = targets[(first + i) % targets.len()];
                        if let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await {
                            outbound = Some(stream);
                            break;
                        }
                    }
                    let Some(mut outbound) = outbound else {
                        return;
                    };
                    let cut = async move {
                        let sender_gone = changed
                            .wait_for(|(blocked, now)| *blocked || *now != generation)
                            .await
                            .is_err();
                        if sender_gone {
                            // Nobody can cut any more: copy until either side closes.
                            std::future::pending::<()>().await;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut => {}
                    }
                });
            }
        });
        Proxy {
            port,
            state: Arc::new(tx),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Drops every open connection through the proxy (new ones are still
    /// accepted).
    pub fn cut(&self) {
        self.state.send_modify(|(_, generation)| *generation += 1);
    }

    /// Blocks (drops open connections, refuses new ones) or unblocks.
    pub fn block(&self, blocked: bool) {
        self.state.send_modify(|(b, _)| *b = blocked);
    }

    /// A proxy in front of the Postgres of `url`, and `url` through it.
    pub async fn postgres(url: &str) -> (Proxy, String) {
        let mut url = reqwest::Url::parse(url).unwrap();
        let proxy = Proxy::start(url.port().unwrap_or(5432)).await;
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(proxy.port)).unwrap();
        (proxy, url.to_string())
    }
}
