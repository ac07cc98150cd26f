//! PostgreSQL's catalog as the analyser sees it: a versioned snapshot,
//! loaded over pgwarden's own service connection and refreshed after DDL and
//! on a period.

pub mod load;
pub mod model;
pub mod refresh;

pub use load::{load, CatalogError};
pub use model::{Catalog, Column, Function, Oid, RelKind, Relation, Role};
pub use refresh::Catalogs;
