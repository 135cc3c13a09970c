//! What differs between the expected and the actual snapshot of a schema.

use serde::Serialize;

use super::snapshot::{ObjectKind, Snapshot};

/// How an object differs from what its migration version makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Change {
    /// The migrations make it; the tenant's storage lacks it.
    Missing,
    /// The tenant's storage has it; the migrations do not make it.
    Extra,
    /// Both have it, with different definitions.
    Changed,
}

impl Change {
    /// The snake_case name (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Missing => "missing",
            Change::Extra => "extra",
            Change::Changed => "changed",
        }
    }
}

/// One object that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Difference {
    /// What kind of object.
    pub kind: ObjectKind,
    /// The table it belongs to (columns, indexes, constraints, policies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Its name.
    pub name: String,
    /// Missing, extra or changed.
    pub change: Change,
    /// Its definition as the migrations make it.
    pub expected: Option<String>,
    /// Its definition in the tenant's storage.
    pub actual: Option<String>,
}

impl Difference {
    /// A difference not tied to a table (the migration version, the storage itself).
    pub(crate) fn of(
        kind: ObjectKind,
        name: &str,
        change: Change,
        expected: Option<String>,
        actual: Option<String>,
    ) -> Self {
        Self {
            kind,
            table: None,
            name: name.to_owned(),
            change,
            expected,
            actual,
        }
    }
}

/// Every object that is missing, extra or changed in `actual`, in the snapshots' order.
pub(crate) fn compare(expected: &Snapshot, actual: &Snapshot) -> Vec<Difference> {
    let mut found = Vec::new();
    let mut push =
        |key: &super::snapshot::ObjectKey, change, e: Option<&String>, a: Option<&String>| {
            found.push(Difference {
                kind: key.kind,
                table: key.table.clone(),
                name: key.name.clone(),
                change,
                expected: e.cloned(),
                actual: a.cloned(),
            });
        };
    for (key, want) in &expected.objects {
        match actual.objects.get(key) {
            None => push(key, Change::Missing, Some(want), None),
            Some(have) if have != want => push(key, Change::Changed, Some(want), Some(have)),
            Some(_) => {}
        }
    }
    for (key, have) in &actual.objects {
        if !expected.objects.contains_key(key) {
            push(key, Change::Extra, None, Some(have));
        }
    }
    found.sort_by(|a, b| (a.kind, &a.table, &a.name).cmp(&(b.kind, &b.table, &b.name)));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(objects: &[(ObjectKind, &str, &str)]) -> Snapshot {
        let mut s = Snapshot::default();
        for (kind, name, def) in objects {
            s.put(*kind, Some("t"), name, (*def).to_owned());
        }
        s
    }

    #[test]
    fn missing_extra_and_changed_objects_are_listed_in_kind_order() {
        let expected = snap(&[
            (ObjectKind::Column, "a", "text"),
            (ObjectKind::Index, "i", "CREATE INDEX i"),
            (ObjectKind::Policy, "p", "using (true)"),
        ]);
        let actual = snap(&[
            (ObjectKind::Column, "a", "integer"),
            (ObjectKind::Column, "b", "text"),
            (ObjectKind::Policy, "p", "using (true)"),
        ]);
        let differences = compare(&expected, &actual);
        let found: Vec<(ObjectKind, &str, Change)> = differences
            .iter()
            .map(|d| (d.kind, d.name.as_str(), d.change))
            .collect();
        assert_eq!(
            found,
            vec![
                (ObjectKind::Column, "a", Change::Changed),
                (ObjectKind::Column, "b", Change::Extra),
                (ObjectKind::Index, "i", Change::Missing),
            ]
        );
        assert!(compare(&expected, &expected).is_empty());
    }
}
