//! The conversation list's rules, as pure functions over `Vec<Conversation>`: which tab shows a
//! conversation, how live frames change an entry, and the order (newest activity first).

use kefu::model::{Conversation, ConversationStatus, Message, SenderKind};

use crate::browser::parse_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Open,
    Resolved,
}

impl Tab {
    pub fn shows(self, status: ConversationStatus) -> bool {
        match self {
            Tab::Open => status != ConversationStatus::Resolved,
            Tab::Resolved => status == ConversationStatus::Resolved,
        }
    }

    pub fn query(self) -> &'static str {
        match self {
            Tab::Open => "",
            Tab::Resolved => "?status=resolved",
        }
    }
}

/// When the conversation last saw activity, in ms since the epoch.
pub fn activity(c: &Conversation) -> i64 {
    let updated = parse_ms(&c.updated_at).unwrap_or(0);
    let last = c
        .last_message
        .as_ref()
        .and_then(|m| parse_ms(&m.created_at))
        .unwrap_or(0);
    updated.max(last)
}

/// Newest activity first.
pub fn sort(list: &mut [Conversation]) {
    list.sort_by_key(|c| std::cmp::Reverse(activity(c)));
}

/// A fresher copy of a conversation (from a `conversation` frame or a fetch), keeping what the
/// fresh copy does not carry.
pub fn merge(old: &Conversation, mut new: Conversation) -> Conversation {
    if new.visitor.is_none() {
        new.visitor = old.visitor.clone();
    }
    if new.unread.is_none() {
        new.unread = old.unread;
    }
    let old_seq = old.last_message.as_ref().map_or(0, |m| m.seq);
    let new_seq = new.last_message.as_ref().map_or(0, |m| m.seq);
    if old_seq > new_seq {
        new.last_message = old.last_message.clone();
    }
    new.last_seq = new.last_seq.max(old.last_seq);
    new
}

/// Puts a conversation into the list of `tab` (or takes it out when the tab does not show its
/// status), keeping the order.
pub fn upsert(list: &mut Vec<Conversation>, c: Conversation, tab: Tab) {
    let at = list.iter().position(|x| x.id == c.id);
    let c = match at {
        Some(i) => merge(&list.remove(i), c),
        None => c,
    };
    if tab.shows(c.status) {
        list.push(c);
        sort(list);
    }
}

/// A live message. Returns false when the conversation is not in the list (the caller fetches
/// it). `viewing`: the agent has this conversation open, so it does not become unread.
pub fn on_message(list: &mut [Conversation], m: &Message, viewing: bool) -> bool {
    let Some(c) = list.iter_mut().find(|c| c.id == m.conversation_id) else {
        return false;
    };
    let newer = c.last_message.as_ref().is_none_or(|l| m.seq > l.seq);
    // A `conversation` frame may have announced this message (and counted it) already.
    let counted = m.seq <= c.last_seq && c.unread.unwrap_or(0) > 0;
    if newer {
        if m.sender.kind == SenderKind::Visitor && !viewing && !counted {
            c.unread = Some(c.unread.unwrap_or(0) + 1);
        }
        c.last_message = Some(Box::new(m.clone()));
        if parse_ms(&m.created_at) > parse_ms(&c.updated_at) {
            c.updated_at = m.created_at.clone();
        }
    }
    c.last_seq = c.last_seq.max(m.seq);
    if viewing {
        c.unread = Some(0);
    }
    sort(list);
    true
}

/// A fetched list that raced with live frames: entries the frames made newer, or added, win.
pub fn reconcile(mut fetched: Vec<Conversation>, live: &[Conversation]) -> Vec<Conversation> {
    for c in live {
        match fetched.iter_mut().find(|f| f.id == c.id) {
            Some(f) if f.last_seq < c.last_seq => *f = merge(f, c.clone()),
            Some(_) => {}
            None => fetched.push(c.clone()),
        }
    }
    sort(&mut fetched);
    fetched
}

/// The agent opened the conversation: nothing in it is unread any more.
pub fn mark_read(list: &mut [Conversation], id: &str) {
    if let Some(c) = list.iter_mut().find(|c| c.id == id) {
        c.unread = Some(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu::model::Sender;

    fn conv(id: &str, updated: &str) -> Conversation {
        Conversation {
            id: id.into(),
            site_id: "s".into(),
            visitor_id: format!("v-{id}"),
            status: ConversationStatus::Open,
            assignee_id: None,
            last_seq: 1,
            created_at: updated.into(),
            updated_at: updated.into(),
            visitor: None,
            unread: Some(1),
            last_message: None,
        }
    }

    fn msg(conv: &str, seq: u64, at: &str, kind: SenderKind) -> Message {
        Message {
            id: format!("{conv}-{seq}"),
            conversation_id: conv.into(),
            seq,
            sender: Sender {
                kind,
                id: "x".into(),
                name: None,
            },
            body: "hi".into(),
            private: false,
            client_msg_id: None,
            created_at: at.into(),
            quick_replies: Vec::new(),
            meta: None,
        }
    }

    fn ids(list: &[Conversation]) -> Vec<&str> {
        list.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn a_new_message_moves_its_conversation_to_the_top_and_counts_as_unread() {
        let mut list = vec![
            conv("a", "2026-11-27T10:05:00Z"),
            conv("b", "2026-11-27T10:00:00Z"),
        ];
        let m = msg("b", 2, "2026-11-27T10:06:00.250Z", SenderKind::Visitor);
        assert!(on_message(&mut list, &m, false));
        assert_eq!(ids(&list), ["b", "a"]);
        assert_eq!(list[0].unread, Some(2));
        // The same message again (a replay) changes nothing.
        assert!(on_message(&mut list, &m, false));
        assert_eq!(list[0].unread, Some(2));
        // An agent's reply is not unread; viewing clears the count.
        let r = msg("b", 3, "2026-11-27T10:07:00Z", SenderKind::Agent);
        on_message(&mut list, &r, true);
        assert_eq!(list[0].unread, Some(0));
        assert!(!on_message(
            &mut list,
            &msg("zz", 1, "x", SenderKind::Visitor),
            false
        ));
    }

    #[test]
    fn resolving_takes_a_conversation_off_the_open_tab() {
        let mut list = vec![conv("a", "2026-11-27T10:05:00Z")];
        let mut fresh = conv("new", "2026-11-27T11:00:00Z");
        fresh.unread = None;
        upsert(&mut list, fresh, Tab::Open);
        assert_eq!(ids(&list), ["new", "a"]);
        let mut done = conv("a", "2026-11-27T11:30:00Z");
        done.status = ConversationStatus::Resolved;
        upsert(&mut list, done.clone(), Tab::Open);
        assert_eq!(ids(&list), ["new"]);
        let mut resolved = Vec::new();
        upsert(&mut resolved, done, Tab::Resolved);
        assert_eq!(ids(&resolved), ["a"]);
    }

    #[test]
    fn merging_keeps_the_extensions() {
        let mut old = conv("a", "2026-11-27T10:05:00Z");
        old.last_seq = 5;
        old.last_message = Some(Box::new(msg(
            "a",
            5,
            "2026-11-27T10:05:00Z",
            SenderKind::Visitor,
        )));
        let mut new = conv("a", "2026-11-27T10:06:00Z");
        new.unread = None;
        new.last_seq = 4;
        let m = merge(&old, new);
        assert_eq!(m.unread, Some(1));
        assert_eq!(m.last_seq, 5);
        assert_eq!(m.last_message.map(|l| l.seq), Some(5));
    }
}
