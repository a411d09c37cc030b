//! What the binary's test suites share: the `fastnet serve` child process.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_fastnet");

/// A `fastnet serve` child and the address it printed.
pub(crate) struct Serve {
    child: Child,
    /// Its stdout past the listening line.
    stdout: BufReader<ChildStdout>,
    pub(crate) addr: String,
}

impl Serve {
    /// Starts `fastnet serve --addr 127.0.0.1:0 ARGS` and waits for its
    /// listening line.
    pub(crate) fn start(args: &[&str]) -> Serve {
        Self::start_on("127.0.0.1:0", args)
    }

    /// Starts `fastnet serve --addr ADDR ARGS` and waits for its
    /// listening line.
    pub(crate) fn start_on(addr: &str, args: &[&str]) -> Serve {
        let mut child = Command::new(BIN)
            .args(["serve", "--addr", addr])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fastnet serve");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("listening line, got {line:?}"))
            .trim()
            .to_string();
        Serve {
            child,
            stdout,
            addr,
        }
    }

    /// The next line the server prints on stdout (empty at its end).
    #[allow(dead_code)] // not every suite reads on
    pub(crate) fn next_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line
    }

    /// The server's process id.
    #[allow(dead_code)] // not every suite signals it
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A plain TCP connection with a bounded read timeout.
    #[allow(dead_code)] // not every suite speaks plaintext
    pub(crate) fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// SIGTERM, then the exit status and everything printed after the
    /// listening line.
    pub(crate) fn terminate(mut self) -> (i32, String, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut out = String::new();
        let mut err = String::new();
        self.stdout.read_to_string(&mut out).unwrap();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        (code, out, err)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
