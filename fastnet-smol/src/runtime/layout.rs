//! Where connection tasks run: the executors of [`run`] (one per thread,
//! or one shared by all), a caller's executor, or smol's global one, and
//! how each new connection is given a place on them.

use std::future::Future;
use std::io;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use smol::Executor;

#[cfg(any(target_os = "linux", target_os = "android"))]
use super::edge;
use super::Socket;

/// Where connection tasks go.
pub(crate) trait Spawn {
    /// Where the next connection goes.
    fn place(&self) -> Place;
    /// Spawns a connection's task where [`place`](Self::place) said.
    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, place: &Place, f: F);
}

/// Where one connection goes: an executor of [`run`] by index, and that
/// executor's reactor if it has one.
pub(crate) struct Place {
    index: usize,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    reactor: Option<Arc<edge::Reactor>>,
}

impl Place {
    /// On async-io, on the one executor there is.
    fn anywhere() -> Place {
        Place {
            index: 0,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            reactor: None,
        }
    }

    /// The executor's index (0 where there is one): per-thread state such
    /// as a buffer pool's shards can be picked by it.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// Registers an accepted socket where its task will run.
    pub(crate) fn register(&self, stream: TcpStream) -> io::Result<Socket> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(reactor) = &self.reactor {
            return Socket::on_reactor(stream, reactor);
        }
        Socket::on_async_io(stream)
    }
}

/// The executors [`run`] starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Executors {
    /// One `smol::Executor` that every thread runs.
    Shared,
    /// One executor per thread, each connection staying on one. With
    /// `own_reactor` (the sockets are plain TCP) and on Linux, each is an
    /// edge-triggered reactor of the thread's own; otherwise a
    /// `smol::Executor` on async-io.
    PerThread {
        /// Whether the thread's own reactor may take the sockets.
        own_reactor: bool,
    },
}

/// Runs `serve` on the calling thread and the rest of `threads` threads
/// (at least the calling one) laid out as `executors` says, until `serve`
/// returns; `serve` is given the [`Spawn`] that places connections on them
/// in turn. Fails if a thread cannot be started or a reactor fails.
pub(crate) fn run<F: Future>(
    threads: usize,
    executors: Executors,
    serve: impl FnOnce(RoundRobin) -> F,
) -> io::Result<F::Output> {
    let targets = match executors {
        Executors::Shared => vec![Target::Executor(Arc::new(Executor::new()))],
        Executors::PerThread { own_reactor } => Target::per_thread(threads.max(1), own_reactor)?,
    };
    let siblings = Target::reactors(&targets);
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let mut others = Vec::with_capacity(threads.saturating_sub(1));
    for i in 1..threads {
        let target = targets[i % targets.len()].clone();
        let stopped = stopped.clone();
        let siblings = siblings.clone();
        let t = std::thread::Builder::new()
            .name(format!("fastnet-smol-{i}"))
            .spawn(move || target.block_on(&siblings, stopped.recv()))?;
        others.push(t);
    }
    let main = targets[0].clone();
    let spawn = RoundRobin {
        targets,
        next: AtomicUsize::new(0),
    };
    let result = main.block_on(&siblings, serve(spawn));
    // The other threads' futures end as the channel closes.
    drop(stop);
    for t in others {
        let _ = t.join();
    }
    result
}

/// The reactors one of [`run`]'s threads may serve when idle.
#[cfg(any(target_os = "linux", target_os = "android"))]
type Siblings = Vec<Arc<edge::Reactor>>;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
type Siblings = Vec<()>;

/// What one or more of [`run`]'s threads run.
#[derive(Clone)]
enum Target {
    /// A `smol::Executor` on async-io.
    Executor(Arc<Executor<'static>>),
    /// The thread's own edge-triggered reactor and executor (see `edge`).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Reactor(Arc<edge::Reactor>),
}

impl Target {
    /// One target per thread: a reactor each where `own_reactor` allows
    /// (Linux, and the caller says plain TCP), a `smol::Executor` each
    /// otherwise.
    fn per_thread(n: usize, own_reactor: bool) -> io::Result<Vec<Target>> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if own_reactor {
            return (0..n)
                .map(|_| edge::Reactor::new().map(Target::Reactor))
                .collect();
        }
        let _ = own_reactor;
        Ok((0..n)
            .map(|_| Target::Executor(Arc::new(Executor::new())))
            .collect())
    }

    /// The edge reactors among `targets`: each thread's siblings.
    fn reactors(targets: &[Target]) -> Siblings {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return targets
            .iter()
            .filter_map(|t| match t {
                Target::Reactor(r) => Some(Arc::clone(r)),
                Target::Executor(_) => None,
            })
            .collect();
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = targets;
            Siblings::new()
        }
    }

    /// Runs `future` on this thread together with the target's tasks; an
    /// edge reactor serves its `siblings` while it has nothing to do.
    fn block_on<T>(&self, siblings: &Siblings, future: impl Future<Output = T>) -> io::Result<T> {
        let _ = siblings;
        match self {
            Target::Executor(ex) => Ok(smol::block_on(ex.run(future))),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Target::Reactor(r) => edge::block_on(r, siblings, future),
        }
    }
}

/// A caller-supplied executor.
pub(crate) struct OnExecutor(pub(crate) Arc<Executor<'static>>);

impl Spawn for OnExecutor {
    fn place(&self) -> Place {
        Place::anywhere()
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, _: &Place, f: F) {
        self.0.spawn(f).detach();
    }
}

/// The executors of [`run`], taken in turn, one per connection.
pub(crate) struct RoundRobin {
    targets: Vec<Target>,
    next: AtomicUsize,
}

impl Spawn for RoundRobin {
    fn place(&self) -> Place {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.targets.len();
        Place {
            index: i,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            reactor: match &self.targets[i] {
                Target::Reactor(r) => Some(Arc::clone(r)),
                Target::Executor(_) => None,
            },
        }
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, place: &Place, f: F) {
        match &self.targets[place.index] {
            Target::Executor(ex) => ex.spawn(f).detach(),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Target::Reactor(r) => r.spawn(f),
        }
    }
}

/// smol's global executor.
pub(crate) struct Global;

impl Spawn for Global {
    fn place(&self) -> Place {
        Place::anywhere()
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, _: &Place, f: F) {
        smol::spawn(f).detach();
    }
}
