//! Asset keys: `{project}/{runId}/{file}`, e.g.
//! `aismr/run_x1y2z3/render-0.mp4`. Three plain segments, so a key is
//! safe as a path in the folder, as an object name in the bucket and as
//! three segments of the API's route, and never climbs out of either.

use std::fmt;

/// The longest segment a key takes.
const MAX_SEGMENT: usize = 128;

/// A valid asset key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AssetKey(String);

impl AssetKey {
    /// The key of a run's render: `{project}/{runId}/render-{attempt}.mp4`
    /// (`attempt`: the run's render attempt, so a render made again after
    /// a retry never overwrites the one a gate showed).
    pub fn render(project: &str, run_id: &str, attempt: u32) -> Option<AssetKey> {
        AssetKey::from_parts(project, run_id, &format!("render-{attempt}.mp4"))
    }

    /// The key of three segments, if each is plain: 1 to 128 of
    /// `A-Z a-z 0-9 . _ -`, not `.` or `..`.
    pub fn from_parts(project: &str, run_id: &str, file: &str) -> Option<AssetKey> {
        [project, run_id, file]
            .iter()
            .all(|part| plain(part))
            .then(|| AssetKey(format!("{project}/{run_id}/{file}")))
    }

    /// A key as written by [`AssetKey::as_str`].
    pub fn parse(key: &str) -> Option<AssetKey> {
        let mut parts = key.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(project), Some(run_id), Some(file), None) => AssetKey::from_parts(project, run_id, file),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AssetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn plain(part: &str) -> bool {
    (1..=MAX_SEGMENT).contains(&part.len())
        && part != "."
        && part != ".."
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_render_key_names_project_run_and_attempt() {
        let key = AssetKey::render("aismr", "run_abc123", 2).unwrap();
        assert_eq!(key.as_str(), "aismr/run_abc123/render-2.mp4");
        assert_eq!(AssetKey::parse(key.as_str()), Some(key));
    }

    #[test]
    fn keys_never_leave_their_folder() {
        for bad in [
            "a/b", "a/b/c/d", "../b/c", "a/../c", "a/b/..", "./b/c", "a//c", "/b/c", "a/b/c/", "a/b/c d", "a/b/c%2F",
            "a/b\\c/d", "a/b/ü", "",
        ] {
            assert_eq!(AssetKey::parse(bad), None, "{bad:?}");
        }
        assert_eq!(AssetKey::from_parts("a", "b", &"x".repeat(129)), None);
        assert!(AssetKey::from_parts("a", "b", &"x".repeat(128)).is_some());
        assert!(AssetKey::parse("test_video_gen/run_1/render-0.mp4").is_some());
    }
}
