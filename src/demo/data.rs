//! Synthetic HR data, the same for the same seed: plausible-looking people
//! whose sensitive values are all visibly fake (SSNs in the never-issued 9xx
//! area, 555-01xx phone numbers, `XX` IBANs, example.com emails).

use super::words::{self, DepartmentSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use std::fmt;

/// A calendar date, as days since 1970-01-01 (no date crate needed for this).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date(pub i64);

impl Date {
    /// The date of a year, month (1-12) and day (1-31).
    pub fn ymd(y: i64, m: u32, d: u32) -> Self {
        // Howard Hinnant's days_from_civil.
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(m);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Self(era * 146_097 + doe - 719_468)
    }

    /// Year, month and day.
    pub fn parts(self) -> (i64, u32, u32) {
        let z = self.0 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let y = yoe + era * 400 + i64::from(m <= 2);
        (y, m, d)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.parts();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// A row of `hr.departments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    /// Primary key.
    pub id: i32,
    /// Department name.
    pub name: String,
    /// Accounting cost center.
    pub cost_center: String,
}

/// A row of `hr.employees`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Employee {
    /// Primary key (1-based, dense).
    pub id: i32,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// `first.last{id}@example.com`.
    pub email: String,
    /// `+1-555-01xx-xxxx`.
    pub phone: String,
    /// Department.
    pub department_id: i32,
    /// Manager; `None` only for the CEO.
    pub manager_id: Option<i32>,
    /// Job title.
    pub job_title: String,
    /// First day of work.
    pub hire_date: Date,
    /// Birthday.
    pub date_of_birth: Date,
    /// `9XX-XX-XXXX`, never a real SSN.
    pub ssn: String,
    /// Street, city, state, ZIP.
    pub home_address: String,
    /// Fake IBAN with country code `XX`.
    pub bank_account: String,
}

/// A row of `hr.salaries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salary {
    /// Employee.
    pub employee_id: i32,
    /// Yearly base pay in cents (exact; printed as numeric).
    pub amount_cents: i64,
    /// Yearly bonus in cents.
    pub bonus_cents: i64,
    /// ISO currency code.
    pub currency: &'static str,
    /// Date the pay took effect.
    pub effective_from: Date,
}

/// A row of `hr.performance_reviews`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// Primary key.
    pub id: i32,
    /// Reviewed employee.
    pub employee_id: i32,
    /// Reviewer (the manager).
    pub reviewer_id: Option<i32>,
    /// Review period, e.g. `2023`.
    pub period: String,
    /// 1 (worst) to 5.
    pub rating: i16,
    /// Free text.
    pub comments: String,
}

/// A row of `hr.health_records`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRecord {
    /// Primary key.
    pub id: i32,
    /// Employee.
    pub employee_id: i32,
    /// Medical condition.
    pub condition: String,
    /// Workplace accommodation.
    pub accommodation: String,
    /// Free text.
    pub notes: String,
}

/// All rows of the demo database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HrData {
    /// `hr.departments`.
    pub departments: Vec<Department>,
    /// `hr.employees`, managers before their reports.
    pub employees: Vec<Employee>,
    /// `hr.salaries`.
    pub salaries: Vec<Salary>,
    /// `hr.performance_reviews`.
    pub reviews: Vec<Review>,
    /// `hr.health_records`.
    pub health_records: Vec<HealthRecord>,
}

/// Data is dated as of this day so that it does not depend on the clock.
fn as_of() -> Date {
    Date::ymd(2024, 12, 31)
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    // The lists are non-empty constants.
    &items[rng.random_range(0..items.len())]
}

/// Lower-case ASCII letters and hyphens only, for email local parts.
fn email_part(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Generates `employees` employees and everything that hangs off them.
pub fn generate(employees: usize, seed: u64) -> HrData {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let specs = words::DEPARTMENTS;
    let departments: Vec<Department> = specs
        .iter()
        .zip(1..)
        .map(|(s, id)| Department {
            id,
            name: s.name.into(),
            cost_center: s.cost_center.into(),
        })
        .collect();

    // The first employees go one to each department so every department has a
    // head; the rest are spread with Executive kept small.
    let mut dept_of = Vec::with_capacity(employees);
    for i in 0..employees {
        let d = if i < specs.len() {
            i
        } else if rng.random_bool(0.01) {
            0
        } else {
            rng.random_range(1..specs.len())
        };
        dept_of.push(d);
    }
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); specs.len()];
    for (i, d) in dept_of.iter().enumerate() {
        members[*d].push(i);
    }

    // Hierarchy: employee 1 is the CEO; each department head reports to the
    // CEO; about one in ten of a department are managers under the head; the
    // rest report to one of those managers.
    let mut manager: Vec<Option<usize>> = vec![None; employees];
    let mut level = vec![2u8; employees]; // 0 head, 1 manager, 2 staff
    for m in &members {
        let Some(&head) = m.first() else { continue };
        level[head] = 0;
        if head != 0 {
            manager[head] = Some(0);
        }
        let n_managers = (m.len() / 10).max(1).min(m.len() - 1);
        let managers = &m[1..1 + n_managers];
        for &e in managers {
            level[e] = 1;
            manager[e] = Some(head);
        }
        for &e in &m[1 + n_managers..] {
            manager[e] = Some(*pick(&mut rng, managers));
        }
    }

    let end = as_of();
    let earliest_hire = Date::ymd(2005, 1, 1);
    let mut ssns = HashSet::with_capacity(employees);
    let mut staff = Vec::with_capacity(employees);
    let mut salaries = Vec::with_capacity(employees * 2);
    for i in 0..employees {
        let spec: &DepartmentSpec = &specs[dept_of[i]];
        let id = i as i32 + 1;
        let first = *pick(&mut rng, words::FIRST_NAMES);
        let last = *pick(&mut rng, words::LAST_NAMES);
        let email = format!("{}.{}{id}@example.com", email_part(first), email_part(last));
        let phone = format!(
            "+1-555-01{:02}-{:04}",
            rng.random_range(0..100),
            rng.random_range(0..10_000)
        );
        let job_title = match level[i] {
            0 => spec.head.to_string(),
            1 => spec.manager.to_string(),
            _ => pick(&mut rng, spec.titles).to_string(),
        };
        // Leaders were hired earlier on average.
        let hire_from = if level[i] == 2 {
            earliest_hire.0
        } else {
            earliest_hire.0 - 2000
        };
        let hire_date = Date(rng.random_range(hire_from..=end.0 - 30));
        let age_at_hire_days = rng.random_range(21 * 365..=58 * 365);
        let date_of_birth = Date(hire_date.0 - age_at_hire_days);
        let ssn = loop {
            // Area numbers 900-999 are never issued, so these are not real SSNs.
            let s = format!(
                "9{:02}-{:02}-{:04}",
                rng.random_range(0..100),
                rng.random_range(1..100),
                rng.random_range(1..10_000)
            );
            if ssns.insert(s.clone()) {
                break s;
            }
        };
        let (city, state) = *pick(&mut rng, words::CITIES);
        let home_address = format!(
            "{} {} {}, {city}, {state} {:05}",
            rng.random_range(1..9999),
            pick(&mut rng, words::STREETS),
            pick(&mut rng, words::STREET_SUFFIXES),
            rng.random_range(10_000..99_999)
        );
        let bank_account = format!(
            "XX{:02} DEMO {:04} {:04} {:04} {:02}",
            rng.random_range(10..100),
            rng.random_range(0..10_000),
            rng.random_range(0..10_000),
            rng.random_range(0..10_000),
            rng.random_range(0..100)
        );

        // Pay within the department band, leaders at the top of it.
        let (lo, hi) = (i64::from(spec.band.0), i64::from(spec.band.1));
        let base = match level[i] {
            0 => hi + (hi - lo) / 2 + rng.random_range(0..=(hi - lo) / 4),
            1 => rng.random_range((lo + hi) / 2..=hi),
            _ => rng.random_range(lo..=(lo + hi) / 2 + (hi - lo) / 4),
        };
        let amount = base / 100 * 100;
        let bonus_pct = match level[i] {
            0 => rng.random_range(15..=40),
            1 => rng.random_range(5..=20),
            _ => rng.random_range(0..=12),
        };
        let bonus = amount * bonus_pct / 100 / 50 * 50;
        let raise_date = Date::ymd(2024, 1, 1);
        if hire_date < raise_date {
            // The starting salary, then this year's raise.
            let start = amount * rng.random_range(80..=95) / 100 / 100 * 100;
            salaries.push(Salary {
                employee_id: id,
                amount_cents: start * 100,
                bonus_cents: 0,
                currency: "USD",
                effective_from: hire_date,
            });
        }
        salaries.push(Salary {
            employee_id: id,
            amount_cents: amount * 100,
            bonus_cents: bonus * 100,
            currency: "USD",
            effective_from: hire_date.max(raise_date),
        });

        staff.push(Employee {
            id,
            first_name: first.into(),
            last_name: last.into(),
            email,
            phone,
            department_id: dept_of[i] as i32 + 1,
            manager_id: manager[i].map(|m| m as i32 + 1),
            job_title,
            hire_date,
            date_of_birth,
            ssn,
            home_address,
            bank_account,
        });
    }

    // Yearly reviews by the manager for every full year worked since 2021.
    let mut reviews = Vec::new();
    for e in &staff {
        let Some(reviewer) = e.manager_id else {
            continue;
        };
        let (hired, _, _) = e.hire_date.parts();
        for year in 2021.max(hired)..=2024 {
            // Too new to be reviewed that year.
            if e.hire_date > Date::ymd(year, 6, 30) {
                continue;
            }
            let rating: i16 = match rng.random_range(0..100) {
                0..5 => 1,
                5..17 => 2,
                17..62 => 3,
                62..90 => 4,
                _ => 5,
            };
            let comments = pick(&mut rng, words::REVIEW_COMMENTS[(rating - 1) as usize]);
            reviews.push(Review {
                id: reviews.len() as i32 + 1,
                employee_id: e.id,
                reviewer_id: Some(reviewer),
                period: year.to_string(),
                rating,
                comments: (*comments).into(),
            });
        }
    }

    let mut health_records = Vec::new();
    for e in &staff {
        if !rng.random_bool(0.1) {
            continue;
        }
        let (condition, accommodation) = *pick(&mut rng, words::HEALTH);
        health_records.push(HealthRecord {
            id: health_records.len() as i32 + 1,
            employee_id: e.id,
            condition: condition.into(),
            accommodation: accommodation.into(),
            notes: (*pick(&mut rng, words::HEALTH_NOTES)).into(),
        });
    }

    HrData {
        departments,
        employees: staff,
        salaries,
        reviews,
        health_records,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        assert_eq!(generate(500, 7), generate(500, 7));
        assert_ne!(generate(500, 7).employees, generate(500, 8).employees);
    }

    #[test]
    fn counts_match() {
        for n in [0, 1, 5, 12, 13, 300, 2000] {
            let d = generate(n, 42);
            assert_eq!(d.employees.len(), n);
            assert_eq!(d.departments.len(), 12);
            let with_salary: HashSet<i32> = d.salaries.iter().map(|s| s.employee_id).collect();
            assert_eq!(with_salary.len(), n, "every employee has a salary");
        }
        let d = generate(2000, 42);
        assert!(
            (100..=300).contains(&d.health_records.len()),
            "about 10% have health records"
        );
        assert!(d.reviews.len() > 2000, "a few reviews per employee");
    }

    #[test]
    fn ssns_are_fake_and_unique() {
        let d = generate(2000, 42);
        let mut seen = HashSet::new();
        for e in &d.employees {
            let b = e.ssn.as_bytes();
            assert_eq!(b.len(), 11, "{}", e.ssn);
            assert_eq!(b[0], b'9', "{}", e.ssn);
            assert_eq!((b[3], b[6]), (b'-', b'-'), "{}", e.ssn);
            assert!(seen.insert(e.ssn.clone()));
        }
    }

    #[test]
    fn references_point_at_existing_rows() {
        let d = generate(2000, 42);
        let ids: HashSet<i32> = d.employees.iter().map(|e| e.id).collect();
        let depts: HashSet<i32> = d.departments.iter().map(|d| d.id).collect();
        let mut roots = 0;
        for e in &d.employees {
            assert!(depts.contains(&e.department_id));
            match e.manager_id {
                Some(m) => {
                    assert!(ids.contains(&m), "manager {m} of {} missing", e.id);
                    assert!(m < e.id, "managers come before their reports");
                }
                None => roots += 1,
            }
            assert!(e.date_of_birth < e.hire_date);
            assert!(e.email.ends_with("@example.com"));
        }
        assert_eq!(roots, 1, "only the CEO has no manager");
        for r in &d.reviews {
            assert!(ids.contains(&r.employee_id));
            assert!(r.reviewer_id.is_some_and(|m| ids.contains(&m)));
            assert!((1..=5).contains(&r.rating));
        }
        for h in &d.health_records {
            assert!(ids.contains(&h.employee_id));
        }
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(Date::ymd(1970, 1, 1).0, 0);
        assert_eq!(Date::ymd(2000, 3, 1).to_string(), "2000-03-01");
        for days in -40_000..40_000 {
            let (y, m, d) = Date(days).parts();
            assert_eq!(Date::ymd(y, m, d), Date(days));
        }
    }
}
