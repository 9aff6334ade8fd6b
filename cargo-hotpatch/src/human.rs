//! Durations and dates as people read them: `850µs`, `231ms`, `1.42s`, `2m05s`, and
//! `2026-11-27 22:57:15 UTC` instead of epoch seconds.

use std::time::Duration;

/// A duration with three significant figures at most, in the largest unit under which it is
/// at least one: `0.40µs`, `850µs`, `231ms`, `1.42s`, `12.3s`, `2m05s`, or `0s`. Seconds are never rounded to
/// whole ones below a minute: a split of `rustc 2s` says too little to work on.
pub fn duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    let secs = d.as_secs_f64();
    if secs >= 60.0 {
        let whole = d.as_secs();
        return format!("{}m{:02}s", whole / 60, whole % 60);
    }
    if secs >= 1.0 {
        return format!("{}s", significant(secs));
    }
    let ms = secs * 1e3;
    if ms >= 1.0 {
        return format!("{}ms", significant(ms));
    }
    format!("{}µs", significant(secs * 1e6))
}

/// A number of at least 1 (below 1000) with three significant figures: `1.42`, `12.3`, `231`.
fn significant(value: f64) -> String {
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.decimals$}")
}

/// A duration in milliseconds (as the wire carries it) for people.
pub fn millis(ms: u64) -> String {
    duration(Duration::from_millis(ms))
}

/// A duration in microseconds (as the wire carries it) for people.
pub fn micros(us: u64) -> String {
    duration(Duration::from_micros(us))
}

/// Seconds since the Unix epoch as a UTC date and time: `2026-11-27 22:57:15 UTC`.
pub fn date(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let of_day = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_three_figures_and_never_round_seconds_to_whole_ones() {
        assert_eq!(duration(Duration::ZERO), "0s");
        assert_eq!(duration(Duration::from_nanos(400)), "0.40µs");
        assert_eq!(duration(Duration::from_micros(850)), "850µs");
        assert_eq!(duration(Duration::from_micros(231_440)), "231ms");
        assert_eq!(duration(Duration::from_micros(12_340)), "12.3ms");
        assert_eq!(duration(Duration::from_millis(1420)), "1.42s");
        assert_eq!(duration(Duration::from_millis(2000)), "2.00s");
        assert_eq!(duration(Duration::from_millis(2040)), "2.04s");
        assert_eq!(duration(Duration::from_millis(12_345)), "12.3s");
        assert_eq!(duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(date(1_795_820_235), "2026-11-27 22:57:15 UTC");
    }
}
