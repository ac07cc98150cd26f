//! The type OIDs masking understands, and how each is handled.

/// `bool` (no method masks it into a value; listed for callers and tests).
pub const BOOL: u32 = 16;
/// `text`.
pub const TEXT: u32 = 25;
/// `varchar`.
pub const VARCHAR: u32 = 1043;
/// `bpchar` (`char(n)`).
pub const BPCHAR: u32 = 1042;
/// `name`.
pub const NAME: u32 = 19;
/// `int2`.
pub const INT2: u32 = 21;
/// `int4`.
pub const INT4: u32 = 23;
/// `int8`.
pub const INT8: u32 = 20;
/// `numeric`.
pub const NUMERIC: u32 = 1700;
/// `float4`.
pub const FLOAT4: u32 = 700;
/// `float8`.
pub const FLOAT8: u32 = 701;
/// `date`.
pub const DATE: u32 = 1082;
/// `timestamp`.
pub const TIMESTAMP: u32 = 1114;
/// `timestamptz`.
pub const TIMESTAMPTZ: u32 = 1184;
/// `uuid`.
pub const UUID: u32 = 2950;

/// An integer type: its binary width and range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntType {
    I16,
    I32,
    I64,
}

impl IntType {
    /// Whether `v` fits the type.
    pub(crate) fn holds(self, v: i128) -> bool {
        match self {
            IntType::I16 => i16::try_from(v).is_ok(),
            IntType::I32 => i32::try_from(v).is_ok(),
            IntType::I64 => i64::try_from(v).is_ok(),
        }
    }
}

/// The family a type OID belongs to, as far as masking cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Text-like: the text and binary encodings are the same bytes.
    Text {
        bpchar: bool,
    },
    Int(IntType),
    Numeric,
    Float {
        single: bool,
    },
    Date,
    Timestamp {
        tz: bool,
    },
    Uuid,
    Other,
}

/// The family of `oid`.
pub(crate) fn kind(oid: u32) -> Kind {
    match oid {
        TEXT | VARCHAR | NAME => Kind::Text { bpchar: false },
        BPCHAR => Kind::Text { bpchar: true },
        INT2 => Kind::Int(IntType::I16),
        INT4 => Kind::Int(IntType::I32),
        INT8 => Kind::Int(IntType::I64),
        NUMERIC => Kind::Numeric,
        FLOAT4 => Kind::Float { single: true },
        FLOAT8 => Kind::Float { single: false },
        DATE => Kind::Date,
        TIMESTAMP => Kind::Timestamp { tz: false },
        TIMESTAMPTZ => Kind::Timestamp { tz: true },
        UUID => Kind::Uuid,
        _ => Kind::Other,
    }
}
