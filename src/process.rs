//! One process looked up by pid, for the few places hearth signals or measures a process it
//! knows (the background service, a server's jobs, the server itself): sysinfo refreshed for
//! that pid only, not the whole process table.

use sysinfo::{Pid, Process, ProcessRefreshKind, ProcessesToUpdate, Signal, System};

/// A process as the system saw it when it was looked up.
pub struct Snapshot {
    system: System,
    pid: Pid,
}

impl Snapshot {
    /// `pid` now, with its memory read when `memory` is set; `None` when no such process runs.
    pub fn of(pid: u32, memory: bool) -> Option<Self> {
        let mut system = System::new();
        let pid = Pid::from_u32(pid);
        let kind = if memory {
            ProcessRefreshKind::nothing().with_memory()
        } else {
            ProcessRefreshKind::nothing()
        };
        system.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), true, kind);
        system.process(pid)?;
        Some(Self { system, pid })
    }

    /// The process.
    pub fn process(&self) -> &Process {
        self.system
            .process(self.pid)
            .expect("looked up when the snapshot was made")
    }

    /// Whether it is a hearth (a recycled pid belongs to something else).
    pub fn is_hearth(&self) -> bool {
        self.process().name().to_string_lossy().contains("hearth")
    }

    /// Sends `signal`; whether it was delivered.
    pub fn signal(&self, signal: Signal) -> bool {
        self.process().kill_with(signal) == Some(true)
    }
}
