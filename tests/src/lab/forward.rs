//! A byte forwarder, so clients on the host (kubectl, the plugin, tests) reach the emulator
//! inside `ke-lab` without any route from the root namespace: host `127.0.0.1:<port>` →
//! unix socket (not bound to a network namespace) → forwarder in `ke-lab` → `192.0.2.1:6443`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// One end of a forwarder: `tcp:ADDR` or `unix:PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(addr) = text.strip_prefix("tcp:") {
            return addr
                .parse()
                .map(Endpoint::Tcp)
                .map_err(|e| format!("{text}: {e}"));
        }
        if let Some(path) = text.strip_prefix("unix:") {
            return Ok(Endpoint::Unix(path.into()));
        }
        Err(format!("{text}: expected tcp:ADDR:PORT or unix:PATH"))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "tcp:{addr}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    async fn bind(endpoint: &Endpoint) -> std::io::Result<Self> {
        match endpoint {
            Endpoint::Tcp(addr) => Ok(Listener::Tcp(TcpListener::bind(addr).await?)),
            Endpoint::Unix(path) => {
                let _ = std::fs::remove_file(path);
                Ok(Listener::Unix(UnixListener::bind(path)?))
            }
        }
    }

    async fn accept(&self) -> std::io::Result<Box<dyn Stream>> {
        Ok(match self {
            Listener::Tcp(l) => Box::new(l.accept().await?.0),
            Listener::Unix(l) => Box::new(l.accept().await?.0),
        })
    }

    fn port(&self) -> Option<u16> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok().map(|a| a.port()),
            Listener::Unix(_) => None,
        }
    }
}

async fn connect(endpoint: &Endpoint) -> std::io::Result<Box<dyn Stream>> {
    Ok(match endpoint {
        Endpoint::Tcp(addr) => Box::new(TcpStream::connect(addr).await?),
        Endpoint::Unix(path) => Box::new(UnixStream::connect(path).await?),
    })
}

/// Forwards every connection accepted on `listen` to `to`, until the process is stopped.
/// With a TCP listener, writes the bound port to `port_file` (so port 0 picks a free one).
pub async fn forward(
    listen: Endpoint,
    to: Endpoint,
    port_file: Option<&Path>,
) -> anyhow::Result<()> {
    let listener = Listener::bind(&listen).await?;
    if let (Some(file), Some(port)) = (port_file, listener.port()) {
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, port.to_string())?;
        std::fs::rename(&tmp, file)?;
    }
    tracing::info!(%listen, %to, "forwarding");
    loop {
        let mut inbound = listener.accept().await?;
        let to = to.clone();
        tokio::spawn(async move {
            match connect(&to).await {
                Ok(mut outbound) => {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                Err(e) => tracing::warn!(%to, error = %e, "cannot connect"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn endpoints_parse() {
        let cases = [
            (
                "tcp:127.0.0.1:0",
                Ok(Endpoint::Tcp("127.0.0.1:0".parse().unwrap())),
            ),
            ("unix:/run/x.sock", Ok(Endpoint::Unix("/run/x.sock".into()))),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Endpoint>(), want);
        }
        assert!("http://x".parse::<Endpoint>().is_err());
        assert!("tcp:nonsense".parse::<Endpoint>().is_err());
    }

    #[tokio::test]
    async fn bytes_go_through_a_unix_hop_both_ways() {
        let dir = std::env::temp_dir().join(format!("ke-lab-forward-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let sock = dir.join("hop.sock");
        let port_file = dir.join("port");
        tokio::spawn(forward(
            Endpoint::Unix(sock.clone()),
            Endpoint::Tcp(echo_addr),
            None,
        ));
        let pf = port_file.clone();
        tokio::spawn(async move {
            forward(
                "tcp:127.0.0.1:0".parse().unwrap(),
                Endpoint::Unix(sock),
                Some(&pf),
            )
            .await
        });
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                break text.parse::<u16>().unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        client.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.read_exact(&mut back),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(&back, b"hello");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
