//! An immutable snapshot of what the analyser needs from PostgreSQL's
//! catalog: schemas, relations with their columns, view definitions,
//! functions and role memberships. Snapshots are swapped whole; each carries
//! a version that is part of every analysis cache key.

use std::collections::HashMap;

/// PostgreSQL object id.
pub type Oid = u32;

/// What kind of relation (pg_class.relkind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelKind {
    /// 'r' ordinary table.
    Table,
    /// 'p' partitioned table.
    PartitionedTable,
    /// 'v' view.
    View,
    /// 'm' materialized view.
    MaterializedView,
    /// 'f' foreign table.
    ForeignTable,
    /// 'S' sequence.
    Sequence,
    /// 'c' composite type, 'i'/'I' indexes, 't' toast: not queried as tables.
    Other,
}

impl RelKind {
    /// Maps pg_class.relkind.
    pub fn from_relkind(c: u8) -> Self {
        match c {
            b'r' => Self::Table,
            b'p' => Self::PartitionedTable,
            b'v' => Self::View,
            b'm' => Self::MaterializedView,
            b'f' => Self::ForeignTable,
            b'S' => Self::Sequence,
            _ => Self::Other,
        }
    }
}

/// One column of a relation (attnum > 0, not dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name as stored (case preserved).
    pub name: String,
    /// pg_attribute.attnum.
    pub attnum: i16,
    /// pg_type oid of the column.
    pub type_oid: Oid,
    /// Type name as format_type prints it.
    pub type_name: String,
}

/// A relation with its columns, in attnum order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// pg_class oid.
    pub oid: Oid,
    /// Schema name.
    pub schema: String,
    /// Relation name.
    pub name: String,
    /// Kind.
    pub kind: RelKind,
    /// Live columns in attnum order.
    pub columns: Vec<Column>,
    /// For views: `pg_get_viewdef` text (a SELECT).
    pub view_definition: Option<String>,
    /// Primary key columns, in key order (empty: none).
    pub primary_key: Vec<String>,
    /// Row-level security is enabled.
    pub row_security: bool,
}

impl Relation {
    /// A column by exact (already case-folded) name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// A column by attribute number.
    pub fn column_by_attnum(&self, attnum: i16) -> Option<&Column> {
        self.columns.iter().find(|c| c.attnum == attnum)
    }

    /// `schema.name`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// A function (pg_proc), as far as policy needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// pg_proc oid.
    pub oid: Oid,
    /// Schema name.
    pub schema: String,
    /// Function name.
    pub name: String,
    /// Implementation language (sql, plpgsql, c, internal, ...).
    pub language: String,
    /// SECURITY DEFINER.
    pub security_definer: bool,
    /// Returns a set (usable in FROM).
    pub returns_set: bool,
}

/// A role and everything it is a member of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// pg_authid oid.
    pub oid: Oid,
    /// Role name.
    pub name: String,
    /// rolsuper.
    pub superuser: bool,
    /// Roles whose privileges this role has, transitively, honouring
    /// `rolinherit` (the role itself not included).
    pub member_of: Vec<String>,
    /// Roles it may `SET ROLE` to (directly or transitively, whatever
    /// `rolinherit` says; the role itself not included). A superset of
    /// `member_of`: the privileges a session of this role can obtain.
    pub can_set_role: Vec<String>,
}

/// The catalog snapshot.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Increases with every reload that changed something.
    pub version: u64,
    /// Schema names to oids.
    pub schemas: HashMap<String, Oid>,
    /// Relations by oid.
    pub relations: HashMap<Oid, Relation>,
    /// Schema, then relation name, to relation oid.
    pub by_name: HashMap<String, HashMap<String, Oid>>,
    /// Schema, then function name, to the functions of that name (overloads).
    pub functions: HashMap<String, HashMap<String, Vec<Function>>>,
    /// Roles by name.
    pub roles: HashMap<String, Role>,
}

impl Catalog {
    /// Adds a relation and indexes it by name.
    pub fn insert_relation(&mut self, r: Relation) {
        self.by_name
            .entry(r.schema.clone())
            .or_default()
            .insert(r.name.clone(), r.oid);
        self.relations.insert(r.oid, r);
    }

    /// Adds a function and indexes it by name.
    pub fn insert_function(&mut self, f: Function) {
        self.functions
            .entry(f.schema.clone())
            .or_default()
            .entry(f.name.clone())
            .or_default()
            .push(f);
    }

    /// A relation by oid.
    pub fn relation(&self, oid: Oid) -> Option<&Relation> {
        self.relations.get(&oid)
    }

    /// A relation by schema and name (both already case-folded).
    pub fn relation_in(&self, schema: &str, name: &str) -> Option<&Relation> {
        let oid = self.by_name.get(schema)?.get(name)?;
        self.relations.get(oid)
    }

    /// Functions named `name` in `schema`.
    pub fn functions_in(&self, schema: &str, name: &str) -> &[Function] {
        self.functions
            .get(schema)
            .and_then(|m| m.get(name))
            .map_or(&[], Vec::as_slice)
    }

    /// A role by name.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    /// Whether `role` is `other` or a member of it (inheriting).
    pub fn role_is(&self, role: &str, other: &str) -> bool {
        role == other
            || self
                .roles
                .get(role)
                .is_some_and(|r| r.member_of.iter().any(|m| m == other))
    }
}
