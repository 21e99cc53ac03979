//! A loopback TCP relay between two nodes, to break their connection at a
//! chosen point of a protocol exchange.
//!
//! A connection made to [`Relay::addr`] is joined to the target address and
//! its bytes copied both ways. A test can make one direction a black hole
//! ([`Relay::black_hole`]: bytes are counted, never delivered) and then
//! [`Relay::cut`] every connection through the relay, as a network failure
//! would: both nodes see the socket close. What went into the black hole is
//! lost, exactly as messages in flight are lost when a connection drops.
//! Connections made after a cut go through normally.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A direction through the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the node that connected to the relay, to the target.
    ToTarget,
    /// From the target back to the node that connected.
    FromTarget,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Self::ToTarget => 0,
            Self::FromTarget => 1,
        }
    }
}

#[derive(Default)]
struct State {
    /// The copying tasks of the live connections.
    tasks: Vec<JoinHandle<()>>,
    black_hole: [bool; 2],
    dropped: [usize; 2],
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The relay.
pub struct Relay {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    accept: JoinHandle<()>,
}

impl Relay {
    /// A relay on a free loopback port, joining each connection to
    /// `target`.
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free loopback port");
        let addr = listener.local_addr().expect("the listener's address");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else { continue };
                // Small messages go out at once, as on a direct connection.
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                let to = tokio::spawn(pump(in_read, out_write, Direction::ToTarget, shared.clone()));
                let from = tokio::spawn(pump(out_read, in_write, Direction::FromTarget, shared.clone()));
                lock(&shared).tasks.extend([to, from]);
            }
        });
        Relay { addr, state, accept }
    }

    /// Where to connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on, bytes going `direction` are dropped (and counted from
    /// zero) until the next [`Relay::cut`].
    pub fn black_hole(&self, direction: Direction) {
        let mut state = lock(&self.state);
        state.black_hole[direction.index()] = true;
        state.dropped[direction.index()] = 0;
    }

    /// How many bytes going `direction` were dropped since its black hole
    /// opened.
    pub fn dropped(&self, direction: Direction) -> usize {
        lock(&self.state).dropped[direction.index()]
    }

    /// Closes every connection through the relay (both sockets of each),
    /// and stops dropping bytes.
    pub fn cut(&self) {
        let mut state = lock(&self.state);
        for task in state.tasks.drain(..) {
            // Aborting drops the task's socket halves, closing the sockets.
            task.abort();
        }
        state.black_hole = [false; 2];
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Copies `from` to `to` until either side closes, dropping what the
/// direction's black hole swallows. (Readiness and `try_*` calls: the
/// crate's tokio has no `io-util`.)
async fn pump(from: OwnedReadHalf, to: OwnedWriteHalf, direction: Direction, state: Arc<Mutex<State>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if from.readable().await.is_err() {
            break;
        }
        let n = match from.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(_) => break,
        };
        {
            let mut state = lock(&state);
            if state.black_hole[direction.index()] {
                state.dropped[direction.index()] += n;
                continue;
            }
        }
        if write_all(&to, &buf[..n]).await.is_err() {
            break;
        }
    }
    // Dropping `to` shuts its direction down.
}

async fn write_all(to: &OwnedWriteHalf, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        to.writable().await?;
        match to.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
