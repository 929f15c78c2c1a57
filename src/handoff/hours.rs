//! Business hours: when agents are on duty, in the business's own time zone.

use serde::Deserialize;
use time::{OffsetDateTime, UtcOffset};

use crate::dialogue::Millis;

/// Opening hours, the same on each listed weekday.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    /// The business's offset from UTC in minutes (China: 480).
    #[serde(default = "china")]
    pub utc_offset_minutes: i32,
    /// ISO weekdays on duty, 1 = Monday … 7 = Sunday.
    #[serde(default = "every_day")]
    pub days: Vec<u8>,
    /// "HH:MM", inclusive.
    #[serde(default = "midnight")]
    pub open: String,
    /// "HH:MM", exclusive; "24:00" for the end of the day.
    #[serde(default = "end_of_day")]
    pub close: String,
}

fn china() -> i32 {
    480
}
fn every_day() -> Vec<u8> {
    (1..=7).collect()
}
fn midnight() -> String {
    "00:00".into()
}
fn end_of_day() -> String {
    "24:00".into()
}

impl Default for BusinessHours {
    /// Around the clock, so the demo always has someone "on duty" once an agent logs in.
    fn default() -> Self {
        BusinessHours { utc_offset_minutes: china(), days: every_day(), open: midnight(), close: end_of_day() }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HoursError {
    #[error("business hours: {0:?} is not a time of day HH:MM (00:00 to 24:00)")]
    Time(String),
    #[error("business hours: weekday {0} is not between 1 (Monday) and 7 (Sunday)")]
    Day(u8),
    #[error("business hours: opening {open} is not before closing {close}")]
    Order { open: String, close: String },
}

fn minutes(s: &str) -> Result<u32, HoursError> {
    let bad = || HoursError::Time(s.to_string());
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl BusinessHours {
    pub fn validate(&self) -> Result<(), HoursError> {
        if let Some(d) = self.days.iter().find(|d| !(1..=7).contains(*d)) {
            return Err(HoursError::Day(*d));
        }
        if minutes(&self.open)? >= minutes(&self.close)? {
            return Err(HoursError::Order { open: self.open.clone(), close: self.close.clone() });
        }
        Ok(())
    }

    /// Whether `now` (ms since the epoch) falls inside the hours. Invalid hours (rejected by
    /// `validate` at start-up) count as closed.
    pub fn is_open(&self, now: Millis) -> bool {
        let (Ok(open), Ok(close)) = (minutes(&self.open), minutes(&self.close)) else { return false };
        let local_minutes = (now / 60_000) as i64 + self.utc_offset_minutes as i64;
        let day = local_minutes.div_euclid(24 * 60);
        let minute = local_minutes.rem_euclid(24 * 60) as u32;
        // 1970-01-01 was a Thursday (ISO weekday 4).
        let weekday = ((day + 3).rem_euclid(7) + 1) as u8;
        self.days.contains(&weekday) && open <= minute && minute < close
    }

    /// Business time (ms the business is open) between `from` and `until`: what a paused
    /// SLA clock owes back. 0 when the hours are never open.
    pub fn business_between(&self, from: Millis, until: Millis) -> Millis {
        let (Ok(open), Ok(close)) = (minutes(&self.open), minutes(&self.close)) else { return 0 };
        let Ok(offset) = UtcOffset::from_whole_seconds(self.utc_offset_minutes.saturating_mul(60)) else { return 0 };
        let Ok(start) = OffsetDateTime::from_unix_timestamp_nanos(from as i128 * 1_000_000) else { return 0 };
        if open >= close || until <= from {
            return 0;
        }
        let (mut date, mut total) = (start.to_offset(offset).date(), 0);
        // One local day at a time, each day's open window clipped to [from, until).
        for _ in 0..=(until - from) / 86_400_000 + 1 {
            let Ok(midnight) = u64::try_from(date.midnight().assume_offset(offset).unix_timestamp()) else { break };
            let midnight = midnight * 1000;
            if midnight >= until {
                break;
            }
            if self.days.contains(&date.weekday().number_from_monday()) {
                let (a, b) = ((midnight + open as u64 * 60_000).max(from), (midnight + close as u64 * 60_000).min(until));
                total += b.saturating_sub(a);
            }
            let Some(next) = date.next_day() else { break };
            date = next;
        }
        total
    }

    /// The instant `budget_ms` of business time after `start`: the budget runs down only
    /// while the business is open (an SLA of 4 hours given at 17:00 on a Friday, 09:00–18:00
    /// on weekdays, falls due at 12:00 on Monday). `None` when the hours are never open.
    /// Calendar days come from the `time` crate; the fixed offset has no daylight saving,
    /// so every local day is 24 hours long.
    pub fn add_business(&self, start: Millis, budget_ms: u64) -> Option<Millis> {
        let (Ok(open), Ok(close)) = (minutes(&self.open), minutes(&self.close)) else { return None };
        if open >= close || !self.days.iter().any(|d| (1..=7).contains(d)) {
            return None;
        }
        if budget_ms == 0 {
            return Some(start);
        }
        let offset = UtcOffset::from_whole_seconds(self.utc_offset_minutes.checked_mul(60)?).ok()?;
        let mut date = OffsetDateTime::from_unix_timestamp_nanos(start as i128 * 1_000_000).ok()?.to_offset(offset).date();
        let (mut at, mut left) = (start, budget_ms);
        // A budget of years would walk many days; a week has at least one open day, so this
        // bound covers any budget of up to 100 years.
        for _ in 0..(budget_ms / 60_000 + 8).min(40_000) {
            let midnight = date.midnight().assume_offset(offset).unix_timestamp();
            let midnight = u64::try_from(midnight).ok()? * 1000;
            if self.days.contains(&date.weekday().number_from_monday()) {
                let (from, until) = (midnight + open as u64 * 60_000, midnight + close as u64 * 60_000);
                let from = at.max(from);
                if from < until {
                    if left <= until - from {
                        return Some(from + left);
                    }
                    left -= until - from;
                }
            }
            date = date.next_day()?;
            at = at.max(midnight + 24 * 3_600_000);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-23 is a Monday; 01:30 UTC is 09:30 in China.
    const MONDAY_0930_CHINA: Millis = 1_795_397_400_000;

    #[test]
    fn open_and_closed_in_local_time() {
        let office = BusinessHours { days: vec![1, 2, 3, 4, 5], open: "09:00".into(), close: "18:00".into(), ..Default::default() };
        office.validate().unwrap();
        assert!(office.is_open(MONDAY_0930_CHINA));
        assert!(!office.is_open(MONDAY_0930_CHINA - 3_600_000), "08:30 is before opening");
        assert!(!office.is_open(MONDAY_0930_CHINA + 9 * 3_600_000), "18:30 is after closing");
        assert!(!office.is_open(MONDAY_0930_CHINA - 24 * 3_600_000), "Sunday is not a working day");
        assert!(BusinessHours::default().is_open(MONDAY_0930_CHINA - 24 * 3_600_000));
    }

    const HOUR: u64 = 3_600_000;

    fn office() -> BusinessHours {
        BusinessHours { days: vec![1, 2, 3, 4, 5], open: "09:00".into(), close: "18:00".into(), ..Default::default() }
    }

    #[test]
    fn business_time_runs_within_the_day() {
        // Monday 09:30 + 2 h = Monday 11:30.
        assert_eq!(office().add_business(MONDAY_0930_CHINA, 2 * HOUR), Some(MONDAY_0930_CHINA + 2 * HOUR));
        // Exactly to closing time: due at 18:00, not the next morning.
        assert_eq!(office().add_business(MONDAY_0930_CHINA, 8 * HOUR + HOUR / 2), Some(MONDAY_0930_CHINA + 8 * HOUR + HOUR / 2));
        assert_eq!(office().add_business(MONDAY_0930_CHINA, 0), Some(MONDAY_0930_CHINA));
    }

    #[test]
    fn business_time_between_two_instants() {
        let monday_1700 = MONDAY_0930_CHINA + 7 * HOUR + HOUR / 2;
        // Monday 17:00 to Tuesday 12:00: 1 h on Monday, 3 h on Tuesday.
        assert_eq!(office().business_between(monday_1700, MONDAY_0930_CHINA + 24 * HOUR + 2 * HOUR + HOUR / 2), 4 * HOUR);
        // Friday 17:00 to Monday 10:00: 1 h on Friday, none at the weekend, 1 h on Monday.
        let friday_1700 = monday_1700 + 4 * 24 * HOUR;
        assert_eq!(office().business_between(friday_1700, MONDAY_0930_CHINA + 7 * 24 * HOUR + HOUR / 2), 2 * HOUR);
        // The inverse of add_business, and nothing for an empty or backward span.
        let due = office().add_business(monday_1700, 13 * HOUR).unwrap();
        assert_eq!(office().business_between(monday_1700, due), 13 * HOUR);
        assert_eq!(office().business_between(due, monday_1700), 0);
        assert_eq!(BusinessHours::default().business_between(monday_1700, monday_1700 + 30 * HOUR), 30 * HOUR, "always open");
    }

    #[test]
    fn business_time_stops_overnight() {
        // Monday 17:00 + 4 h: one hour on Monday, three on Tuesday from 09:00 → Tuesday 12:00.
        let monday_1700 = MONDAY_0930_CHINA + 7 * HOUR + HOUR / 2;
        let tuesday_1200 = MONDAY_0930_CHINA + 24 * HOUR + 2 * HOUR + HOUR / 2;
        assert_eq!(office().add_business(monday_1700, 4 * HOUR), Some(tuesday_1200));
        // Given at 03:00 (before opening), the clock starts at 09:00.
        let monday_0300 = MONDAY_0930_CHINA - 6 * HOUR - HOUR / 2;
        assert_eq!(office().add_business(monday_0300, HOUR), Some(MONDAY_0930_CHINA + HOUR / 2));
        // Given at 20:00, after closing: starts at 09:00 the next day.
        let monday_2000 = MONDAY_0930_CHINA + 10 * HOUR + HOUR / 2;
        assert_eq!(office().add_business(monday_2000, HOUR), Some(MONDAY_0930_CHINA + 24 * HOUR + HOUR / 2));
    }

    #[test]
    fn business_time_skips_the_weekend() {
        // Friday 17:00 + 4 h → Monday 12:00 (one hour on Friday, three on Monday).
        let friday_1700 = MONDAY_0930_CHINA + 4 * 24 * HOUR + 7 * HOUR + HOUR / 2;
        let next_monday_1200 = MONDAY_0930_CHINA + 7 * 24 * HOUR + 2 * HOUR + HOUR / 2;
        assert_eq!(office().add_business(friday_1700, 4 * HOUR), Some(next_monday_1200));
        // Saturday noon + 1 h → Monday 10:00.
        let saturday_1200 = MONDAY_0930_CHINA + 5 * 24 * HOUR + 2 * HOUR + HOUR / 2;
        assert_eq!(office().add_business(saturday_1200, HOUR), Some(MONDAY_0930_CHINA + 7 * 24 * HOUR + HOUR / 2));
        // Three business days (27 h) from Thursday 09:00 → Monday 18:00.
        let thursday_0900 = MONDAY_0930_CHINA + 3 * 24 * HOUR - HOUR / 2;
        assert_eq!(office().add_business(thursday_0900, 27 * HOUR), Some(MONDAY_0930_CHINA + 7 * 24 * HOUR + 8 * HOUR + HOUR / 2));
    }

    #[test]
    fn business_time_around_the_clock_and_never() {
        let always = BusinessHours::default();
        assert_eq!(always.add_business(MONDAY_0930_CHINA, 50 * HOUR), Some(MONDAY_0930_CHINA + 50 * HOUR));
        let never = BusinessHours { days: vec![], ..Default::default() };
        assert_eq!(never.add_business(MONDAY_0930_CHINA, HOUR), None);
        // Another offset: UTC office hours, Monday 17:30 UTC + 1 h → Tuesday 09:30 UTC.
        let utc = BusinessHours { utc_offset_minutes: 0, ..office() };
        let monday_1730_utc = MONDAY_0930_CHINA + 16 * HOUR;
        assert_eq!(utc.add_business(monday_1730_utc, HOUR), Some(MONDAY_0930_CHINA + 24 * HOUR + 8 * HOUR));
    }

    #[test]
    fn bad_hours_are_named() {
        let bad = BusinessHours { open: "9点".into(), ..Default::default() };
        assert_eq!(bad.validate(), Err(HoursError::Time("9点".into())));
        let reversed = BusinessHours { open: "18:00".into(), close: "09:00".into(), ..Default::default() };
        assert!(matches!(reversed.validate(), Err(HoursError::Order { .. })));
        let day = BusinessHours { days: vec![0], ..Default::default() };
        assert_eq!(day.validate(), Err(HoursError::Day(0)));
    }
}
