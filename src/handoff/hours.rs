//! Business hours: when agents are on duty, in the business's own time zone.

use serde::Deserialize;

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
