//! Built-in word lists the synthetic HR data is drawn from.

/// A department: name, cost center, salary band (USD), lead title, titles.
pub(super) struct DepartmentSpec {
    pub name: &'static str,
    pub cost_center: &'static str,
    pub band: (u32, u32),
    pub head: &'static str,
    pub manager: &'static str,
    pub titles: &'static [&'static str],
}

pub(super) const DEPARTMENTS: &[DepartmentSpec] = &[
    DepartmentSpec {
        name: "Executive",
        cost_center: "CC-1000",
        band: (150_000, 320_000),
        head: "Chief Executive Officer",
        manager: "Vice President",
        titles: &["Chief of Staff", "Executive Assistant", "Strategy Analyst"],
    },
    DepartmentSpec {
        name: "Engineering",
        cost_center: "CC-2100",
        band: (95_000, 210_000),
        head: "VP of Engineering",
        manager: "Engineering Manager",
        titles: &["Software Engineer", "Senior Software Engineer", "Staff Engineer", "QA Engineer", "Site Reliability Engineer"],
    },
    DepartmentSpec {
        name: "Product",
        cost_center: "CC-2200",
        band: (90_000, 190_000),
        head: "VP of Product",
        manager: "Group Product Manager",
        titles: &["Product Manager", "Senior Product Manager", "Product Designer", "UX Researcher"],
    },
    DepartmentSpec {
        name: "Sales",
        cost_center: "CC-3100",
        band: (55_000, 160_000),
        head: "VP of Sales",
        manager: "Sales Manager",
        titles: &["Account Executive", "Sales Development Representative", "Sales Engineer", "Account Manager"],
    },
    DepartmentSpec {
        name: "Marketing",
        cost_center: "CC-3200",
        band: (55_000, 150_000),
        head: "VP of Marketing",
        manager: "Marketing Manager",
        titles: &["Marketing Specialist", "Content Writer", "Brand Designer", "Growth Analyst"],
    },
    DepartmentSpec {
        name: "Finance",
        cost_center: "CC-4100",
        band: (65_000, 170_000),
        head: "Chief Financial Officer",
        manager: "Finance Manager",
        titles: &["Accountant", "Financial Analyst", "Payroll Specialist", "Controller"],
    },
    DepartmentSpec {
        name: "Human Resources",
        cost_center: "CC-4200",
        band: (55_000, 140_000),
        head: "VP of People",
        manager: "HR Manager",
        titles: &["HR Business Partner", "Recruiter", "Benefits Specialist", "HR Generalist"],
    },
    DepartmentSpec {
        name: "Legal",
        cost_center: "CC-4300",
        band: (80_000, 230_000),
        head: "General Counsel",
        manager: "Associate General Counsel",
        titles: &["Corporate Counsel", "Paralegal", "Compliance Analyst"],
    },
    DepartmentSpec {
        name: "Customer Support",
        cost_center: "CC-5100",
        band: (40_000, 95_000),
        head: "VP of Customer Experience",
        manager: "Support Team Lead",
        titles: &["Support Specialist", "Senior Support Specialist", "Technical Support Engineer"],
    },
    DepartmentSpec {
        name: "Operations",
        cost_center: "CC-5200",
        band: (50_000, 130_000),
        head: "Chief Operating Officer",
        manager: "Operations Manager",
        titles: &["Operations Analyst", "Procurement Specialist", "Logistics Coordinator"],
    },
    DepartmentSpec {
        name: "IT",
        cost_center: "CC-5300",
        band: (60_000, 150_000),
        head: "Chief Information Officer",
        manager: "IT Manager",
        titles: &["Systems Administrator", "IT Support Technician", "Security Analyst", "Network Engineer"],
    },
    DepartmentSpec {
        name: "Facilities",
        cost_center: "CC-5400",
        band: (38_000, 90_000),
        head: "Director of Facilities",
        manager: "Facilities Manager",
        titles: &["Facilities Coordinator", "Office Manager", "Maintenance Technician"],
    },
];

pub(super) const FIRST_NAMES: &[&str] = &[
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Christopher", "Lisa", "Daniel", "Nancy", "Matthew", "Betty", "Anthony",
    "Sandra", "Mark", "Margaret", "Steven", "Ashley", "Paul", "Kimberly", "Andrew", "Emily",
    "Joshua", "Donna", "Kenneth", "Michelle", "Kevin", "Carol", "Brian", "Amanda", "Priya",
    "Wei", "Aisha", "Carlos", "Sofia", "Hiroshi", "Fatima", "Olga", "Mateo", "Ngozi", "Lars",
    "Ingrid", "Rahul", "Mei", "Diego", "Zoe", "Omar", "Chloe", "Jamal", "Elena", "Noah", "Ava",
];

/// Includes names with apostrophes and hyphens, so SQL quoting gets exercised.
pub(super) const LAST_NAMES: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "O'Brien", "O'Connor", "D'Angelo",
    "Smith-Jones", "Patel", "Chen", "Kim", "Singh", "Okafor", "Yamamoto", "Kowalski", "Larsen",
    "Novak", "Haddad", "Ivanova", "Mbeki",
];

pub(super) const STREETS: &[&str] = &[
    "Maple", "Oak", "Pine", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park", "Sunset",
    "River", "Highland", "Meadow", "Forest", "Spring", "Church", "Mill", "Willow", "Chestnut",
];

pub(super) const STREET_SUFFIXES: &[&str] = &["St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Ct", "Way"];

/// City and state pairs.
pub(super) const CITIES: &[(&str, &str)] = &[
    ("Springfield", "IL"),
    ("Riverside", "CA"),
    ("Franklin", "TN"),
    ("Greenville", "SC"),
    ("Madison", "WI"),
    ("Salem", "OR"),
    ("Georgetown", "TX"),
    ("Arlington", "VA"),
    ("Fairview", "NJ"),
    ("Clinton", "NY"),
    ("Bristol", "CT"),
    ("Dover", "DE"),
    ("Auburn", "WA"),
    ("Burlington", "VT"),
    ("Denver", "CO"),
    ("Portland", "ME"),
];

/// Review comments by rating (index 0 is rating 1).
pub(super) const REVIEW_COMMENTS: [&[&str]; 5] = [
    &[
        "Did not meet most goals; performance improvement plan agreed.",
        "Repeated missed deadlines; needs close supervision.",
    ],
    &[
        "Met some goals; needs to improve communication with the team.",
        "Quality of work inconsistent; coaching planned.",
    ],
    &[
        "Solid year; met expectations.",
        "Reliable and steady; could take on more ownership.",
        "Met goals; should grow cross-team visibility.",
    ],
    &[
        "Exceeded goals on key projects.",
        "Strong contributor and mentor to new hires.",
        "Consistently high quality; ready for more scope.",
    ],
    &[
        "Outstanding year; recommended for promotion.",
        "Exceptional impact across the organisation.",
    ],
];

/// Health conditions with a matching workplace accommodation.
pub(super) const HEALTH: &[(&str, &str)] = &[
    ("Type 1 diabetes", "Breaks for glucose monitoring"),
    ("Chronic back pain", "Ergonomic chair and standing desk"),
    ("Migraine", "Reduced screen brightness; flexible hours"),
    ("Asthma", "Desk away from cleaning supplies"),
    ("Pregnancy", "Parking near entrance; flexible schedule"),
    ("Hearing impairment", "Captioning for meetings"),
    ("Generalized anxiety disorder", "Quiet workspace; remote days"),
    ("Carpal tunnel syndrome", "Vertical mouse and voice dictation"),
    ("Low vision", "Screen magnifier software"),
    ("Recovery from knee surgery", "Temporary remote work"),
    ("Celiac disease", "Gluten-free catering at events"),
];

pub(super) const HEALTH_NOTES: &[&str] = &[
    "Doctor's note on file.",
    "Reviewed with occupational health.",
    "Accommodation to be reassessed in six months.",
    "Employee asked that the manager not be told the diagnosis.",
    "Temporary; ends after return-to-work assessment.",
];
