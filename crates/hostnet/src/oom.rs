//! The process's `oom_score_adj`, which kube-proxy sets on itself (its
//! `oom.NewOOMAdjuster().ApplyOOMScoreAdj(0, value)`: `/proc/self/oom_score_adj`).

use std::path::Path;

/// Errors setting `oom_score_adj`.
#[derive(Debug, thiserror::Error)]
pub enum OomError {
    /// Outside -1000..=1000.
    #[error("oom_score_adj {0} is not in -1000..=1000")]
    OutOfRange(i32),
    /// The write failed (lowering it needs CAP_SYS_RESOURCE).
    #[error("writing {value} to {path}: {source}")]
    Write {
        /// The value.
        value: i32,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Writes `value` to `file` (normally `/proc/self/oom_score_adj`).
///
/// # Errors
/// [`OomError`].
pub fn set_oom_score_adj(file: &Path, value: i32) -> Result<(), OomError> {
    if !(-1000..=1000).contains(&value) {
        return Err(OomError::OutOfRange(value));
    }
    std::fs::write(file, value.to_string()).map_err(|source| OomError::Write {
        value,
        path: file.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root (CAP_SYS_RESOURCE) to lower the value; a child process is
    /// adjusted so the test runner keeps its own.
    #[test]
    fn the_kernel_takes_the_value() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let file = format!("/proc/{}/oom_score_adj", child.id());
        let result = set_oom_score_adj(Path::new(&file), 500);
        let read = std::fs::read_to_string(&file).unwrap_or_default();
        child.kill().ok();
        child.wait().ok();
        result.expect("raising needs no privilege");
        assert_eq!(read.trim(), "500");
        assert!(matches!(
            set_oom_score_adj(Path::new(&file), -1001),
            Err(OomError::OutOfRange(-1001))
        ));
    }
}
