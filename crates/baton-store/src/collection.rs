//! Typed collections over the document store: a [`Collection<T>`] reads and writes `T` (serde)
//! by id, with the one conditional read-modify-write loop ([`Collection::update`]) and the one
//! paging iterator ([`Pages`]) that callers would otherwise each write for themselves.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Doc, DocQuery, DocStore, DocWatch, DocWrite, Expect, KeyRange, StoreError};

/// How many times [`Collection::update`] re-reads after losing a conditional write before it
/// gives up. Each loss means another writer committed in between, so the store made progress;
/// under group commit one of N writers of a hot document wins per batch and an unlucky one can
/// lose dozens of rounds in a row (8 writers of one document lost up to 64 on SQLite), so the
/// bound is generous: it is there so that a caller hears of a livelock instead of spinning.
pub const UPDATE_ATTEMPTS_MAX: usize = 1000;

/// A document of a collection as stored: its value with the columns it is listed by.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored<T> {
    pub id: String,
    pub status: String,
    pub at_ms: u64,
    /// What a conditional write of this document must expect.
    pub version: u64,
    pub value: T,
}

/// What to write: the value and the columns it is listed by.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<T> {
    pub status: String,
    pub at_ms: u64,
    pub value: T,
}

impl<T> Entry<T> {
    pub fn new(status: impl Into<String>, at_ms: u64, value: T) -> Entry<T> {
        Entry {
            status: status.into(),
            at_ms,
            value,
        }
    }
}

/// What an [`Collection::update`] step decided, with what the caller gets back.
#[derive(Debug)]
pub enum Change<T, R> {
    /// Write this (conditionally on the version read).
    Put(Entry<T>, R),
    /// Remove the document (it must still be the version read).
    Delete(R),
    /// Write nothing.
    Keep(R),
}

/// A kind of document whose bodies are `T`.
pub struct Collection<T> {
    kind: &'static str,
    _values: PhantomData<fn() -> T>,
}

impl<T> Clone for Collection<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Collection<T> {}

impl<T> std::fmt::Debug for Collection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Collection({})", self.kind)
    }
}

impl<T: Serialize + DeserializeOwned> Collection<T> {
    pub const fn new(kind: &'static str) -> Collection<T> {
        Collection {
            kind,
            _values: PhantomData,
        }
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Reads a stored document as `T`; a body that is not a `T` is [`StoreError::Corrupt`].
    pub fn decode(&self, doc: Doc) -> Result<Stored<T>, StoreError> {
        let value = serde_json::from_value(doc.body)
            .map_err(|e| StoreError::Corrupt(format!("{}/{}: {e}", self.kind, doc.id)))?;
        Ok(Stored {
            id: doc.id,
            status: doc.status,
            at_ms: doc.at_ms,
            version: doc.version,
            value,
        })
    }

    pub async fn get<S: DocStore>(
        &self,
        store: &S,
        id: &str,
    ) -> Result<Option<Stored<T>>, StoreError> {
        store
            .doc(self.kind, id)
            .await?
            .map(|d| self.decode(d))
            .transpose()
    }

    /// Writes `entry` if `expect` holds; the new version, or [`StoreError::DocConflict`].
    pub async fn put<S: DocStore>(
        &self,
        store: &S,
        id: &str,
        entry: &Entry<T>,
        expect: Expect,
    ) -> Result<u64, StoreError> {
        let body = serde_json::to_value(&entry.value)
            .map_err(|e| StoreError::Corrupt(format!("{}/{id}: {e}", self.kind)))?;
        store
            .put_doc(DocWrite {
                kind: self.kind.to_string(),
                id: id.to_string(),
                status: entry.status.clone(),
                at_ms: entry.at_ms,
                body,
                expect,
            })
            .await
    }

    /// Creates the document unless one with this id exists: `Ok(None)` when it was created,
    /// `Ok(Some(existing))` when another writer got there first.
    pub async fn create<S: DocStore>(
        &self,
        store: &S,
        id: &str,
        entry: &Entry<T>,
    ) -> Result<Option<Stored<T>>, StoreError> {
        for _ in 0..UPDATE_ATTEMPTS_MAX {
            match self.put(store, id, entry, Expect::Absent).await {
                Ok(_) => return Ok(None),
                Err(StoreError::DocConflict { .. }) => {
                    // Exists, unless it was deleted again before we could read it.
                    if let Some(existing) = self.get(store, id).await? {
                        return Ok(Some(existing));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(self.too_contended(id))
    }

    /// The conditional read-modify-write: reads the document, asks `step` what to do with it,
    /// and writes on condition that nobody wrote in between; on a lost race reads again and asks
    /// again (at most [`UPDATE_ATTEMPTS_MAX`] times). `step` must be a pure decision on what it
    /// is shown, since it may run more than once.
    pub async fn update<S: DocStore, R>(
        &self,
        store: &S,
        id: &str,
        mut step: impl FnMut(Option<&Stored<T>>) -> Change<T, R>,
    ) -> Result<R, StoreError> {
        for _ in 0..UPDATE_ATTEMPTS_MAX {
            let current = self.get(store, id).await?;
            let expect = current
                .as_ref()
                .map_or(Expect::Absent, |c| Expect::Version(c.version));
            match step(current.as_ref()) {
                Change::Keep(r) => return Ok(r),
                Change::Put(entry, r) => match self.put(store, id, &entry, expect).await {
                    Ok(_) => return Ok(r),
                    // Let the winner's other work run before reading again.
                    Err(StoreError::DocConflict { .. }) => tokio::task::yield_now().await,
                    Err(e) => return Err(e),
                },
                Change::Delete(r) => {
                    let Some(c) = current else {
                        return Ok(r);
                    };
                    match store.delete_doc_at(self.kind, id, c.version).await {
                        Ok(_) => return Ok(r),
                        Err(StoreError::DocConflict { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Err(self.too_contended(id))
    }

    fn too_contended(&self, id: &str) -> StoreError {
        StoreError::Io(format!(
            "{}/{id}: {UPDATE_ATTEMPTS_MAX} conditional writes in a row lost to other writers",
            self.kind
        ))
    }

    /// Every document the query admits, a page at a time, in the query's order; the query's
    /// `limit` is the page size (0 means 500).
    pub fn pages<'a, S: DocStore>(&self, store: &'a S, query: DocQuery) -> Pages<'a, S, T> {
        Pages {
            collection: *self,
            store,
            query,
            done: false,
        }
    }

    /// Reads every document the query admits (through [`Pages`]), at most `max`; the bool says
    /// whether more were left.
    pub async fn all<S: DocStore>(
        &self,
        store: &S,
        query: DocQuery,
        max: usize,
    ) -> Result<(Vec<Stored<T>>, bool), StoreError> {
        let mut out = Vec::new();
        let mut pages = self.pages(store, query);
        while let Some(page) = pages.next_page().await? {
            for d in page {
                if out.len() == max {
                    return Ok((out, true));
                }
                out.push(d);
            }
        }
        Ok((out, false))
    }

    /// Wakes on any change of a document of this collection.
    pub fn watch_all<S: DocStore>(&self, store: &S) -> DocWatch {
        store.watch(&[(self.kind, KeyRange::All)])
    }

    /// Wakes on a change of the document `id`.
    pub fn watch_one<S: DocStore>(&self, store: &S, id: &str) -> DocWatch {
        store.watch(&[(self.kind, KeyRange::Exact(id.to_string()))])
    }
}

/// Default page size of [`Pages`].
const PAGE_DEFAULT: usize = 500;

/// The paging iterator of a collection: each call of [`Pages::next_page`] continues after the
/// last document of the previous page, so documents written meanwhile before the cursor are not
/// read twice and a page is never silently short of the rest.
pub struct Pages<'a, S, T> {
    collection: Collection<T>,
    store: &'a S,
    query: DocQuery,
    done: bool,
}

impl<S: DocStore, T: Serialize + DeserializeOwned> Pages<'_, S, T> {
    /// The next page, or `None` when there is no more.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Stored<T>>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        if self.query.limit == 0 {
            self.query.limit = PAGE_DEFAULT;
        }
        let docs = self.store.docs(self.collection.kind, &self.query).await?;
        if docs.len() < self.query.limit {
            self.done = true;
        }
        let Some(last) = docs.last() else {
            return Ok(None);
        };
        self.query.after = Some((last.at_ms, last.id.clone()));
        let page = docs
            .into_iter()
            .map(|d| self.collection.decode(d))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(page))
    }
}
