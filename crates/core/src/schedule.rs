//! When a schedule fires: a cron pattern read in an IANA time zone.
//!
//! Patterns are POSIX/Vixie cron (croner): five fields (minute, hour, day
//! of month, month, day of week; 0 and 7 are Sunday), or six with seconds
//! first, and the nicknames `@hourly`, `@daily`, `@weekly`, `@monthly`,
//! `@yearly`. A pattern is read in its time zone, so `0 9 * * *` in
//! `Europe/Paris` is 09:00 in Paris in winter and in summer. On the day the
//! clock jumps forward a time that does not exist fires at the first one
//! after it; when the clock goes back a repeated time fires once.
//!
//! The missed firings policy ([`Cadence::after_missed`]) lives here too: a
//! schedule found late (its service was down) fires once for all the times
//! it missed, then continues from the first time after now.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// The longest pattern and time zone name a schedule may have.
pub const MAX_CRON_CHARS: usize = 200;
pub const MAX_TIMEZONE_CHARS: usize = 64;

/// Missed firings counted at most (beyond it the count says "at least").
pub const MAX_COUNTED_MISSES: u32 = 1000;

/// Every IANA time zone name a schedule may use.
pub fn time_zones() -> impl Iterator<Item = &'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|zone| zone.name())
}

/// A parsed pattern in its time zone.
#[derive(Debug, Clone)]
pub struct Cadence {
    cron: Cron,
    zone: Tz,
}

/// Why a pattern or a time zone was refused; the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CadenceError {
    Cron(String),
    Timezone(String),
}

impl Cadence {
    /// Reads `cron` (5 fields, or 6 with seconds) in `timezone` (an IANA
    /// name such as `Europe/Paris` or `UTC`). A pattern that never fires
    /// (`0 0 30 2 *`) is refused too.
    pub fn parse(cron: &str, timezone: &str) -> Result<Cadence, CadenceError> {
        if cron.chars().count() > MAX_CRON_CHARS {
            return Err(CadenceError::Cron(format!("at most {MAX_CRON_CHARS} characters")));
        }
        if timezone.chars().count() > MAX_TIMEZONE_CHARS {
            return Err(CadenceError::Timezone(format!(
                "at most {MAX_TIMEZONE_CHARS} characters"
            )));
        }
        let fields = cron.split_whitespace().count();
        if !cron.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
            return Err(CadenceError::Cron(format!(
                "{cron:?} has {fields} fields; expected 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)"
            )));
        }
        let parsed = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(cron)
            .map_err(|err| CadenceError::Cron(format!("{cron:?} is not a cron pattern: {err}")))?;
        let zone: Tz = timezone.parse().map_err(|_| {
            CadenceError::Timezone(format!(
                "{timezone:?} is not an IANA time zone (e.g. UTC, Europe/Paris, America/New_York)"
            ))
        })?;
        let cadence = Cadence { cron: parsed, zone };
        if cadence.next_after(Utc::now()).is_none() {
            return Err(CadenceError::Cron(format!("{cron:?} never fires")));
        }
        Ok(cadence)
    }

    /// The first firing strictly after `after`; `None` when there is none
    /// (a pattern that matches no date).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }

    /// The policy for a schedule due at `due` and seen at `now`: it fires
    /// once (for `due`), and its next firing is the first after `now`
    /// ("catch up once"). Also the firings skipped: those after `due` up to
    /// `now` (at most [`MAX_COUNTED_MISSES`] are counted).
    pub fn after_missed(&self, due: DateTime<Utc>, now: DateTime<Utc>) -> (Option<DateTime<Utc>>, u32) {
        let mut skipped = 0;
        let mut at = due;
        loop {
            match self.next_after(at) {
                Some(next) if next <= now && skipped < MAX_COUNTED_MISSES => {
                    skipped += 1;
                    at = next;
                }
                Some(next) if next <= now => return (self.next_after(now), skipped),
                next => return (next, skipped),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn five_fields_fire_on_the_minute_in_their_zone() {
        let cadence = Cadence::parse("0 9 * * 1-5", "Europe/Paris").unwrap();
        // Friday 2026-12-04 10:00 Paris (09:00 UTC): the next is Monday 09:00 Paris.
        let next = cadence.next_after(utc("2026-12-04T09:00:00Z")).unwrap();
        assert_eq!(next, utc("2026-12-07T08:00:00Z"));
        // Summer time: 09:00 Paris is 07:00 UTC.
        let next = cadence.next_after(utc("2026-07-01T12:00:00Z")).unwrap();
        assert_eq!(next, utc("2026-07-02T07:00:00Z"));
    }

    #[test]
    fn six_fields_have_seconds_first() {
        let cadence = Cadence::parse("*/10 * * * * *", "UTC").unwrap();
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 3).unwrap();
        assert_eq!(
            cadence.next_after(at),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 10).unwrap())
        );
        // Strictly after: a firing time is not its own next.
        assert_eq!(
            cadence.next_after(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 10).unwrap()),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 20).unwrap())
        );
    }

    #[test]
    fn weekdays_are_posix() {
        // 1 is Monday, 0 and 7 Sunday (not Quartz's 1 = Sunday).
        let monday = Cadence::parse("0 12 * * 1", "UTC").unwrap();
        let next = monday.next_after(utc("2026-12-01T00:00:00Z")).unwrap();
        assert_eq!(next.format("%A").to_string(), "Monday");
        let sunday = Cadence::parse("0 12 * * 7", "UTC").unwrap();
        let next = sunday.next_after(utc("2026-12-01T00:00:00Z")).unwrap();
        assert_eq!(next.format("%A").to_string(), "Sunday");
    }

    #[test]
    fn bad_patterns_and_zones_name_their_field() {
        for cron in [
            "",
            "* * * *",
            "* * * * * * *",
            "61 * * * *",
            "hello",
            "0 0 30 2 *",
            "* * * * * 2026",
        ] {
            assert!(
                matches!(Cadence::parse(cron, "UTC"), Err(CadenceError::Cron(_))),
                "{cron:?} accepted"
            );
        }
        for zone in ["", "Mars/Olympus", "Europe/Pari", "+02:00"] {
            assert!(
                matches!(Cadence::parse("0 9 * * *", zone), Err(CadenceError::Timezone(_))),
                "{zone:?} accepted"
            );
        }
        assert!(Cadence::parse("@daily", "America/New_York").is_ok());
        assert!(Cadence::parse(&"*".repeat(300), "UTC").is_err());
    }

    #[test]
    fn the_clock_jumping_forward_fires_once_after_the_gap() {
        // 2026-03-29 02:30 does not exist in Paris (02:00 -> 03:00).
        let cadence = Cadence::parse("30 2 * * *", "Europe/Paris").unwrap();
        let next = cadence.next_after(utc("2026-03-28T12:00:00Z")).unwrap();
        let after = cadence.next_after(next).unwrap();
        assert!(next < after);
        assert_eq!(after, utc("2026-03-30T00:30:00Z"));
    }

    #[test]
    fn the_clock_going_back_fires_a_repeated_time_once() {
        // 2026-10-25 02:30 happens twice in Paris (03:00 -> 02:00).
        let cadence = Cadence::parse("30 2 * * *", "Europe/Paris").unwrap();
        let first = cadence.next_after(utc("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(first, utc("2026-10-25T00:30:00Z"));
        assert_eq!(cadence.next_after(first), Some(utc("2026-10-26T01:30:00Z")));
    }

    #[test]
    fn a_late_schedule_fires_once_and_continues_after_now() {
        let cadence = Cadence::parse("0 * * * *", "UTC").unwrap();
        let due = utc("2026-12-01T10:00:00Z");
        // Seen at 13:20: 11:00, 12:00 and 13:00 were missed too.
        let (next, skipped) = cadence.after_missed(due, utc("2026-12-01T13:20:00Z"));
        assert_eq!((next, skipped), (Some(utc("2026-12-01T14:00:00Z")), 3));
        // On time: nothing skipped, the next hour.
        let (next, skipped) = cadence.after_missed(due, due);
        assert_eq!((next, skipped), (Some(utc("2026-12-01T11:00:00Z")), 0));
        // Very late: the count stops, the next firing is still after now.
        let every_second = Cadence::parse("* * * * * *", "UTC").unwrap();
        let now = utc("2026-12-02T10:00:00Z");
        let (next, skipped) = every_second.after_missed(due, now);
        assert_eq!((next, skipped), (Some(utc("2026-12-02T10:00:01Z")), MAX_COUNTED_MISSES));
    }
}
