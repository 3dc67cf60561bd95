//! SQLite's default page cache with one change: a truncate that has no page to drop is not
//! passed on.
//!
//! After every write transaction SQLite asks its page cache to drop the pages past the end of the
//! database (`xTruncate`). The default cache (`pcache1`) knows whether it holds any by the largest
//! page number it has held since its last truncate, and when the limit is far below that number it
//! scans its whole hash table. A B-tree page split (`balance_nonroot`) that puts its new pages in
//! ascending order swaps two of them through a temporary number, the pending-byte page (262,145
//! with 4 KiB pages). That raises the largest number although no page keeps it, so every commit
//! that made such a swap scans the whole cache to drop nothing. On the server's writer, whose
//! random index keys split pages in most commits, that was about 5 % of the process's CPU
//! (`docs/BENCHMARKS.md`).
//!
//! The cache installed here keeps its own bound on the page numbers it holds, which the swap
//! leaves where it was, and passes a truncate on only when a page at or past the limit may be
//! cached. Every other call goes straight to the default cache, which does all the work.
//!
//! [`install`] must run before SQLite is first used in the process, as `sqlite3_config`
//! requires: call it before opening any connection. It is the only unsafe code in the workspace.

use std::os::raw::{c_int, c_uint, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use libsqlite3_sys as ffi;

/// Why [`install`] left SQLite's default page cache in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotInstalled {
    /// SQLite's result code: `SQLITE_MISUSE` (21) when SQLite was already in use.
    pub code: i32,
}

impl std::fmt::Display for NotInstalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SQLite refused the page cache (result code {}{})",
            self.code,
            if self.code == ffi::SQLITE_MISUSE {
                ": SQLite was already in use in this process"
            } else {
                ""
            }
        )
    }
}

impl std::error::Error for NotInstalled {}

/// Installs the page cache for every SQLite connection the process opens from now on. Call it
/// before the first connection; later calls return the first one's result.
pub fn install() -> Result<(), NotInstalled> {
    static RESULT: OnceLock<Result<(), NotInstalled>> = OnceLock::new();
    *RESULT.get_or_init(|| {
        // SAFETY: the `OnceLock` runs this once; the caller's contract is that no SQLite
        // connection exists yet (SQLite refuses with SQLITE_MISUSE if it was initialized).
        unsafe { install_now() }.map_err(|code| NotInstalled { code })
    })
}

/// How many truncates the cache did not pass on since the process started (each one a scan of a
/// whole cache that the default would have made).
pub fn truncates_skipped() -> u64 {
    SKIPPED.load(Ordering::Relaxed)
}

static SKIPPED: AtomicU64 = AtomicU64::new(0);

/// The default cache's methods, which every call is passed on to.
struct Default(ffi::sqlite3_pcache_methods2);

// SAFETY: function pointers and SQLite's own argument pointer, written once before any use and
// only read afterwards; SQLite calls them from any thread.
unsafe impl Send for Default {}
// SAFETY: as above.
unsafe impl Sync for Default {}

static DEFAULT: OnceLock<Default> = OnceLock::new();

fn default() -> &'static ffi::sqlite3_pcache_methods2 {
    // Set before this module's methods are handed to SQLite, so always there when they run.
    &DEFAULT
        .get()
        .expect("the default page cache is read first")
        .0
}

unsafe fn install_now() -> Result<(), c_int> {
    let mut methods = std::mem::MaybeUninit::<ffi::sqlite3_pcache_methods2>::zeroed();
    // SAFETY: SQLITE_CONFIG_GETPCACHE2 takes a pointer to a methods struct, which it fills.
    let rc = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_GETPCACHE2, methods.as_mut_ptr()) };
    if rc != ffi::SQLITE_OK {
        return Err(rc);
    }
    // SAFETY: zeroed is a valid value of this plain C struct, and SQLite filled it in.
    let methods = unsafe { methods.assume_init() };
    let complete = methods.xInit.is_some()
        && methods.xShutdown.is_some()
        && methods.xCreate.is_some()
        && methods.xCachesize.is_some()
        && methods.xPagecount.is_some()
        && methods.xFetch.is_some()
        && methods.xUnpin.is_some()
        && methods.xRekey.is_some()
        && methods.xTruncate.is_some()
        && methods.xDestroy.is_some()
        && methods.xShrink.is_some();
    if !complete || DEFAULT.set(Default(methods)).is_err() {
        return Err(ffi::SQLITE_MISUSE);
    }
    let ours = ffi::sqlite3_pcache_methods2 {
        iVersion: 1,
        pArg: std::ptr::null_mut(),
        xInit: Some(init),
        xShutdown: Some(shutdown),
        xCreate: Some(create),
        xCachesize: Some(cachesize),
        xPagecount: Some(pagecount),
        xFetch: Some(fetch),
        xUnpin: Some(unpin),
        xRekey: Some(rekey),
        xTruncate: Some(truncate),
        xDestroy: Some(destroy),
        xShrink: Some(shrink),
    };
    // SAFETY: SQLITE_CONFIG_PCACHE2 takes a pointer to a methods struct, which it copies.
    let rc = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_PCACHE2, &ours) };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rc)
    }
}

/// One cache: the default cache's, and the bound on the page numbers it holds.
struct Cache {
    inner: *mut ffi::sqlite3_pcache,
    bound: Bound,
}

/// The cache behind a handle this module made.
///
/// # Safety
/// `p` must come from [`create`] and not be destroyed; SQLite calls one cache's methods one at a
/// time (its pager is used under its connection's or shared cache's mutex).
unsafe fn cache<'a>(p: *mut ffi::sqlite3_pcache) -> &'a mut Cache {
    // SAFETY: as the caller promises.
    unsafe { &mut *p.cast::<Cache>() }
}

// The methods. Each passes the call on to the default cache with its own handle, and keeps the
// bound up to date. SAFETY, for every call below: the default's methods were all checked present
// in `install_now`, and SQLite calls these only with handles `create` returned.

unsafe extern "C" fn init(_: *mut c_void) -> c_int {
    let d = default();
    unsafe { d.xInit.unwrap_unchecked()(d.pArg) }
}

unsafe extern "C" fn shutdown(_: *mut c_void) {
    let d = default();
    unsafe { d.xShutdown.unwrap_unchecked()(d.pArg) }
}

unsafe extern "C" fn create(
    page_size: c_int,
    extra: c_int,
    purgeable: c_int,
) -> *mut ffi::sqlite3_pcache {
    let inner = unsafe { default().xCreate.unwrap_unchecked()(page_size, extra, purgeable) };
    if inner.is_null() {
        return inner;
    }
    let cache = Box::new(Cache {
        inner,
        bound: Bound::default(),
    });
    Box::into_raw(cache).cast()
}

unsafe extern "C" fn cachesize(p: *mut ffi::sqlite3_pcache, pages: c_int) {
    let c = unsafe { cache(p) };
    unsafe { default().xCachesize.unwrap_unchecked()(c.inner, pages) }
}

unsafe extern "C" fn pagecount(p: *mut ffi::sqlite3_pcache) -> c_int {
    let c = unsafe { cache(p) };
    unsafe { default().xPagecount.unwrap_unchecked()(c.inner) }
}

unsafe extern "C" fn fetch(
    p: *mut ffi::sqlite3_pcache,
    key: c_uint,
    create: c_int,
) -> *mut ffi::sqlite3_pcache_page {
    let c = unsafe { cache(p) };
    let page = unsafe { default().xFetch.unwrap_unchecked()(c.inner, key, create) };
    if !page.is_null() {
        c.bound.held(key);
    }
    page
}

unsafe extern "C" fn unpin(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    discard: c_int,
) {
    let c = unsafe { cache(p) };
    unsafe { default().xUnpin.unwrap_unchecked()(c.inner, page, discard) }
}

unsafe extern "C" fn rekey(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    old: c_uint,
    new: c_uint,
) {
    let c = unsafe { cache(p) };
    unsafe { default().xRekey.unwrap_unchecked()(c.inner, page, old, new) };
    c.bound.rekeyed(old, new);
}

unsafe extern "C" fn truncate(p: *mut ffi::sqlite3_pcache, limit: c_uint) {
    let c = unsafe { cache(p) };
    if c.bound.truncate(limit) {
        unsafe { default().xTruncate.unwrap_unchecked()(c.inner, limit) }
    } else {
        SKIPPED.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe extern "C" fn destroy(p: *mut ffi::sqlite3_pcache) {
    // SAFETY: `p` came from `Box::into_raw` in `create`, and SQLite destroys a cache once.
    let c = unsafe { Box::from_raw(p.cast::<Cache>()) };
    unsafe { default().xDestroy.unwrap_unchecked()(c.inner) }
}

unsafe extern "C" fn shrink(p: *mut ffi::sqlite3_pcache) {
    let c = unsafe { cache(p) };
    unsafe { default().xShrink.unwrap_unchecked()(c.inner) }
}

/// An upper bound on the page numbers a cache holds, kept from the calls that add pages (a fetch)
/// and move them (a rekey). Pages the cache drops on its own (unpinned and recycled, discarded)
/// leave it where it is: it may be too high, never too low.
#[derive(Debug, Default)]
struct Bound {
    /// No cached page has a larger number.
    max: u32,
    /// A number a rekey raised `max` to, and the bound on every other cached page since: when
    /// the page at that number moves again (the swap's last step), `max` comes back down.
    raised: Option<(u32, u32)>,
}

impl Bound {
    /// A page numbered `key` is cached.
    fn held(&mut self, key: u32) {
        if let Some((_, rest)) = &mut self.raised {
            *rest = (*rest).max(key);
        }
        self.max = self.max.max(key);
    }

    /// The page numbered `old` is now numbered `new`.
    fn rekeyed(&mut self, old: u32, new: u32) {
        match self.raised {
            Some((temporary, rest)) if old == temporary => {
                self.raised = None;
                self.max = rest.max(new);
            }
            _ if new > self.max => {
                self.raised = Some((new, self.max));
                self.max = new;
            }
            _ => self.held(new),
        }
    }

    /// Pages numbered `limit` and up are to be dropped: whether any may be cached. Afterwards
    /// none are.
    fn truncate(&mut self, limit: u32) -> bool {
        if limit > self.max {
            return false;
        }
        self.max = limit.saturating_sub(1);
        self.raised = match self.raised {
            Some((temporary, rest)) if temporary < limit => Some((temporary, rest.min(self.max))),
            _ => None,
        };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::Bound;
    use std::collections::BTreeSet;

    /// A B-tree split on a database of 2,000 pages: two new pages swapped through the
    /// pending-byte page, then the commit's truncate at the end of the database.
    #[test]
    fn a_swap_through_a_temporary_number_leaves_nothing_to_truncate() {
        let mut b = Bound::default();
        for key in [1, 17, 1_998, 2_000] {
            b.held(key);
        }
        let temporary = 262_145;
        b.rekeyed(1_998, temporary);
        b.rekeyed(17, 1_998);
        b.rekeyed(temporary, 17);
        assert!(!b.truncate(2_001), "nothing past page 2,000 is cached");
        // The pcache1 default would have scanned here; a page really past the end is still seen.
        b.held(2_001);
        assert!(b.truncate(2_001));
        assert!(!b.truncate(2_001), "the truncate dropped it");
    }

    #[test]
    fn a_page_left_at_the_temporary_number_is_truncated() {
        let mut b = Bound::default();
        b.held(5);
        b.rekeyed(5, 262_145);
        assert!(b.truncate(6));
    }

    /// Random fetches, moves and truncates against the set of numbers really cached: the bound
    /// is never below a cached page, and it falls back after each swap.
    #[test]
    fn the_bound_holds_every_cached_page() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: u32| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % u64::from(n)) as u32
        };
        let mut b = Bound::default();
        let mut cached = BTreeSet::new();
        let mut size = 100;
        let mut skipped = 0;
        for _ in 0..200_000 {
            match next(10) {
                0..=4 => {
                    let key = 1 + next(size + 3);
                    cached.insert(key);
                    b.held(key);
                }
                5 | 6 if cached.len() >= 2 => {
                    // A split's swap: two cached pages exchange numbers through the temporary one.
                    let keys: Vec<u32> = cached.iter().copied().collect();
                    let x = keys[next(keys.len() as u32) as usize];
                    let y = keys[next(keys.len() as u32) as usize];
                    if x != y {
                        b.rekeyed(x, 262_145);
                        b.rekeyed(y, x);
                        b.rekeyed(262_145, y);
                    }
                }
                7 if !cached.is_empty() => {
                    // A page moved to a free number (autovacuum's relocation).
                    let keys: Vec<u32> = cached.iter().copied().collect();
                    let x = keys[next(keys.len() as u32) as usize];
                    let new = 1 + next(size + 3);
                    if !cached.contains(&new) {
                        cached.remove(&x);
                        cached.insert(new);
                        b.rekeyed(x, new);
                    }
                }
                8 => {
                    // A page dropped by the cache itself.
                    if let Some(&k) = cached.iter().nth(next(cached.len() as u32 + 1) as usize) {
                        cached.remove(&k);
                    }
                }
                _ => {
                    size = (size + next(5)).saturating_sub(2).max(1);
                    let limit = size + 1;
                    let needed = cached.range(limit..).next().is_some();
                    let passed = b.truncate(limit);
                    assert!(passed || !needed, "a page at or past {limit} stayed cached");
                    if passed {
                        cached.retain(|&k| k < limit);
                    } else {
                        skipped += 1;
                    }
                }
            }
            if let Some(&top) = cached.iter().next_back() {
                assert!(b.max >= top, "bound {} below cached page {top}", b.max);
            }
        }
        assert!(skipped > 1_000, "only {skipped} truncates skipped");
    }
}
