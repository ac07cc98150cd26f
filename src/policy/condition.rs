//! Rule conditions: days and hours in a time zone, client address ranges,
//! application names.

use super::file::WhenSpec;
use super::pattern::wildcard;
use chrono::{Datelike, TimeZone, Timelike};
use ipnet::IpNet;
use std::net::IpAddr;
use std::time::SystemTime;

/// Where and when a statement runs: what conditions look at.
#[derive(Debug, Clone)]
pub struct Env<'a> {
    /// Now (injectable for tests through `policy.fixed_time`).
    pub now: SystemTime,
    /// Client address.
    pub addr: Option<IpAddr>,
    /// application_name.
    pub application: &'a str,
}

/// A compiled `when`.
#[derive(Debug, Clone)]
pub struct Condition {
    days: Option<[bool; 7]>,
    /// Minutes since midnight, start inclusive, end exclusive.
    hours: Option<(u32, u32)>,
    tz: chrono_tz::Tz,
    nets: Option<Vec<IpNet>>,
    apps: Option<Vec<String>>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn minutes(s: &str) -> Result<u32, String> {
    let (h, m) = s
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("\"{s}\" is not HH:MM"))?;
    let h: u32 = h.parse().map_err(|_| format!("\"{s}\" is not HH:MM"))?;
    let m: u32 = m.parse().map_err(|_| format!("\"{s}\" is not HH:MM"))?;
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err(format!("\"{s}\" is not a time of day"));
    }
    Ok(h * 60 + m)
}

impl Condition {
    /// Compiles a `when`; errors name the sub-field (`when.hours`, ...).
    pub fn compile(w: &WhenSpec) -> Result<Self, (&'static str, String)> {
        let days = match &w.days {
            None => None,
            Some(list) => {
                let mut set = [false; 7];
                for d in list {
                    let lower = d.to_ascii_lowercase();
                    let i = DAYS
                        .iter()
                        .position(|x| lower.starts_with(x))
                        .ok_or(("when.days", format!("\"{d}\" is not a day (mon ... sun)")))?;
                    set[i] = true;
                }
                Some(set)
            }
        };
        let hours = match &w.hours {
            None => None,
            Some(h) => {
                let (a, b) = h
                    .split_once('-')
                    .ok_or(("when.hours", format!("\"{h}\" is not HH:MM-HH:MM")))?;
                Some((
                    minutes(a).map_err(|m| ("when.hours", m))?,
                    minutes(b).map_err(|m| ("when.hours", m))?,
                ))
            }
        };
        let tz = match &w.timezone {
            None => chrono_tz::UTC,
            Some(t) => t
                .parse::<chrono_tz::Tz>()
                .map_err(|_| ("when.timezone", format!("\"{t}\" is not an IANA time zone")))?,
        };
        let nets = match &w.addresses {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|a| {
                        a.parse::<IpNet>()
                            .or_else(|_| a.parse::<IpAddr>().map(IpNet::from))
                            .map_err(|_| ("when.addresses", format!("\"{a}\" is not a CIDR range")))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(Self {
            days,
            hours,
            tz,
            nets,
            apps: w.applications.clone(),
        })
    }

    /// Whether every condition holds.
    pub fn holds(&self, env: &Env<'_>) -> bool {
        if self.days.is_some() || self.hours.is_some() {
            let secs = env
                .now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let Some(local) = self.tz.timestamp_opt(secs, 0).single() else {
                return false;
            };
            if let Some(days) = &self.days {
                if !days[local.weekday().num_days_from_monday() as usize] {
                    return false;
                }
            }
            if let Some((from, to)) = self.hours {
                let m = local.hour() * 60 + local.minute();
                let inside = if from <= to {
                    m >= from && m < to
                } else {
                    m >= from || m < to
                };
                if !inside {
                    return false;
                }
            }
        }
        if let Some(nets) = &self.nets {
            // Unix-socket clients have no address: no range can contain them.
            if !env
                .addr
                .is_some_and(|a| nets.iter().any(|n| n.contains(&a)))
            {
                return false;
            }
        }
        if let Some(apps) = &self.apps {
            if !apps.iter().any(|p| wildcard(p, env.application)) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn env(now_secs: u64, addr: &str, app: &'static str) -> Env<'static> {
        Env {
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(now_secs),
            addr: addr.parse().ok(),
            application: app,
        }
    }

    #[test]
    fn office_hours_in_a_zone() {
        let c = Condition::compile(&WhenSpec {
            days: Some(vec![
                "mon".into(),
                "tue".into(),
                "wed".into(),
                "thu".into(),
                "fri".into(),
            ]),
            hours: Some("08:00-18:00".into()),
            timezone: Some("Europe/Berlin".into()),
            ..Default::default()
        })
        .unwrap();
        // 2026-11-23 is a Monday. 09:00 UTC = 10:00 in Berlin.
        let monday_9utc = 1_795_424_400;
        assert!(c.holds(&env(monday_9utc, "10.0.0.1", "x")));
        // 17:30 UTC = 18:30 in Berlin: outside.
        assert!(!c.holds(&env(monday_9utc + 8 * 3600 + 1800, "10.0.0.1", "x")));
        // Saturday.
        assert!(!c.holds(&env(monday_9utc + 5 * 86400, "10.0.0.1", "x")));
    }

    #[test]
    fn addresses_and_applications() {
        let c = Condition::compile(&WhenSpec {
            addresses: Some(vec!["10.0.0.0/8".into(), "::1".into()]),
            applications: Some(vec!["payroll-*".into()]),
            ..Default::default()
        })
        .unwrap();
        assert!(c.holds(&env(0, "10.1.2.3", "payroll-web")));
        assert!(c.holds(&env(0, "::1", "payroll-batch")));
        assert!(!c.holds(&env(0, "192.168.1.1", "payroll-web")));
        assert!(!c.holds(&env(0, "10.1.2.3", "psql")));
        assert!(Condition::compile(&WhenSpec {
            hours: Some("8-18".into()),
            ..Default::default()
        })
        .is_err());
    }
}
