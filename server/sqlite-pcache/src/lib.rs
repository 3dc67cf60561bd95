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
//! requires. It is the only unsafe code in the workspace.
//!
//! Debug builds check every skipped truncate: they pass it on anyway and abort if the default
//! cache dropped a page, so every test run through SQLite checks the bound.

use std::os::raw::{c_int, c_uint, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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

/// Installs the page cache for every SQLite connection the process opens from now on; later
/// calls return the first one's result.
///
/// Contract: while the first call runs, no other thread may use SQLite. `sqlite3_config` is not
/// thread-safe: SQLite refuses it with SQLITE_MISUSE once it is initialized, but a thread
/// initializing SQLite at the same moment would race with it. The server calls this first thing
/// in `main`, and every other place that opens SQLite calls it before it does (so the first
/// call has finished before any connection opens). Not an `unsafe fn` only because the
/// workspace forbids unsafe code outside this crate.
pub fn install() -> Result<(), NotInstalled> {
    static RESULT: OnceLock<Result<(), NotInstalled>> = OnceLock::new();
    *RESULT.get_or_init(|| {
        // SAFETY: the `OnceLock` runs this once, and by the contract above no other thread
        // uses SQLite meanwhile (if it was initialized before, SQLite refuses: SQLITE_MISUSE).
        unsafe { install_now() }.map_err(|code| NotInstalled { code })
    })
}

/// How many truncates the cache did not pass on since the process started: every one that
/// had nothing to drop, most of which the default cache would also have settled at once; the
/// ones after a swap through the pending-byte page are those it would have scanned for.
pub fn truncates_skipped() -> u64 {
    SKIPPED.load(Ordering::Relaxed)
}

static SKIPPED: AtomicU64 = AtomicU64::new(0);

/// Whether truncates with nothing to drop are skipped (the default). Off, every truncate goes
/// to the default cache, as without this crate; the bound is kept either way.
pub fn set_lean(on: bool) {
    LEAN.store(on, Ordering::Relaxed);
}

static LEAN: AtomicBool = AtomicBool::new(true);

/// The default cache's methods, which every call is passed on to.
struct DefaultMethods(ffi::sqlite3_pcache_methods2);

// SAFETY: function pointers and SQLite's own argument pointer, written once before any use and
// only read afterwards; SQLite calls them from any thread.
unsafe impl Send for DefaultMethods {}
// SAFETY: as above.
unsafe impl Sync for DefaultMethods {}

static DEFAULT: OnceLock<DefaultMethods> = OnceLock::new();

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
    if !complete || DEFAULT.set(DefaultMethods(methods)).is_err() {
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
/// `p` must come from [`create`] and not be destroyed. SQLite calls one cache's methods one at
/// a time: a cache belongs to one pager, used by its connection's thread or under the shared
/// cache's mutex, which pcache1 relies on too (its per-cache group has no mutex of its own).
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
    if c.bound.truncate(limit) || !LEAN.load(Ordering::Relaxed) {
        unsafe { default().xTruncate.unwrap_unchecked()(c.inner, limit) }
    } else {
        SKIPPED.fetch_add(1, Ordering::Relaxed);
        // Debug builds check the skip: passed on anyway, it must drop nothing.
        #[cfg(debug_assertions)]
        {
            let d = default();
            let before = unsafe { d.xPagecount.unwrap_unchecked()(c.inner) };
            unsafe { d.xTruncate.unwrap_unchecked()(c.inner, limit) };
            let after = unsafe { d.xPagecount.unwrap_unchecked()(c.inner) };
            assert_eq!(
                before, after,
                "a truncate to page {limit} was skipped with a page at or past it cached"
            );
        }
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
    /// is never below a cached page, a truncate that had something to drop is never skipped,
    /// and after swaps the bound falls back (truncates are skipped). The moves are made as
    /// SQLite makes them: `sqlite3PcacheMove` first fetches the target number and discards a
    /// page found there. Swaps go through the pending-byte page or through a number inside the
    /// database, sometimes with another move past it before the swap ends; pages are also
    /// fetched, dropped and left at the temporary number, and truncated past it.
    #[test]
    fn the_bound_holds_every_cached_page() {
        const PENDING: u32 = 262_145;
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: u32| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % u64::from(n.max(1))) as u32
        };
        let mut b = Bound::default();
        let mut cached = BTreeSet::new();
        let mut size = 100;
        let mut skipped = 0;
        // A move of the page at `from` to `to`, as sqlite3PcacheMove does it.
        let mv = |b: &mut Bound, cached: &mut BTreeSet<u32>, from: u32, to: u32| {
            if cached.remove(&to) {
                b.held(to);
            }
            cached.remove(&from);
            cached.insert(to);
            b.rekeyed(from, to);
        };
        let check = |b: &Bound, cached: &BTreeSet<u32>| {
            if let Some(&top) = cached.iter().next_back() {
                assert!(b.max >= top, "bound {} below cached page {top}", b.max);
            }
        };
        for _ in 0..300_000 {
            let keys: Vec<u32> = cached.iter().copied().collect();
            let any = |r: u32| keys[r as usize % keys.len().max(1)];
            match next(20) {
                0..=7 => {
                    let key = 1 + next(size + 3);
                    cached.insert(key);
                    b.held(key);
                }
                8..=10 if keys.len() >= 3 => {
                    // A split's swap of two pages through a number no page has.
                    let (x, y) = (any(next(1 << 16)), any(next(1 << 16)));
                    let temporary = if next(2) == 0 {
                        PENDING
                    } else {
                        1 + next(size)
                    };
                    if x != y && !cached.contains(&temporary) {
                        mv(&mut b, &mut cached, x, temporary);
                        check(&b, &cached);
                        if next(4) == 0 {
                            // Another page moved past it meanwhile.
                            let z = any(next(1 << 16));
                            if z != x && z != y {
                                mv(&mut b, &mut cached, z, temporary + 1 + next(9));
                                check(&b, &cached);
                            }
                        }
                        mv(&mut b, &mut cached, y, x);
                        check(&b, &cached);
                        mv(&mut b, &mut cached, temporary, y);
                    }
                }
                11 | 12 if !keys.is_empty() => {
                    // A page moved to another number, perhaps one that holds a page.
                    let x = any(next(1 << 16));
                    let to = 1 + next(size + 3);
                    if to != x {
                        mv(&mut b, &mut cached, x, to);
                    }
                }
                13 => {
                    // The temporary number fetched, and kept or left for a while.
                    cached.insert(PENDING);
                    b.held(PENDING);
                }
                14 | 15 if !keys.is_empty() => {
                    // A page dropped by the cache itself, the temporary one first.
                    let k = if cached.contains(&PENDING) && next(2) == 0 {
                        PENDING
                    } else {
                        any(next(1 << 16))
                    };
                    cached.remove(&k);
                }
                _ => {
                    size = (size + next(5)).saturating_sub(2).max(1);
                    let limit = match next(16) {
                        0 => PENDING + 1,
                        1 => 1,
                        _ => size + 1,
                    };
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
            check(&b, &cached);
        }
        assert!(skipped > 5_000, "only {skipped} truncates skipped");
    }
}
