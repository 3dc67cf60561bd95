//! What a chat shows: committed messages in log order plus our own messages still on their way.
//!
//! Pure data, no browser: the widget and the console feed it every `ack`, `message`, replayed
//! history page and local send, in any order and any number of times, and it keeps one row per
//! message (deduplicated by message id, and by `client_msg_id` for our own pending sends), sorted
//! by conversation and `seq`.

use std::collections::HashSet;

use kefu::model::{Message, SenderKind};

/// Where one of our own messages is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sending,
    Sent,
    Failed,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Sending => "sending",
            Delivery::Sent => "sent",
            Delivery::Failed => "failed",
        }
    }
}

/// One row of a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Message id once committed, else `client_msg_id`.
    pub id: String,
    pub committed: bool,
    pub conversation_id: Option<String>,
    pub seq: u64,
    pub sender: SenderKind,
    pub sender_name: Option<String>,
    pub body: String,
    pub private: bool,
    pub created_at: String,
    pub client_msg_id: Option<String>,
    /// Shown under our own messages: always while sending or failed, and `Sent` on the newest.
    pub delivery: Option<Delivery>,
    /// The bot's suggestions, shown as buttons under its newest message that has some.
    pub quick_replies: Vec<String>,
    /// The hand-over note that says no agent is online (the widget offers a contact form).
    pub offline: bool,
}

impl Item {
    /// A key for keyed lists that changes whenever the row must be drawn again.
    pub fn render_key(&self) -> String {
        let state = self.delivery.map_or("", Delivery::as_str);
        if self.committed {
            format!("m:{}:{state}", self.id)
        } else {
            format!("p:{}:{state}", self.id)
        }
    }

    fn from_message(m: &Message) -> Self {
        Item {
            id: m.id.clone(),
            committed: true,
            conversation_id: Some(m.conversation_id.clone()),
            seq: m.seq,
            sender: m.sender.kind,
            sender_name: m.sender.name.clone(),
            body: m.body.clone(),
            private: m.private,
            created_at: m.created_at.clone(),
            client_msg_id: m.client_msg_id.clone(),
            delivery: None,
            quick_replies: m.quick_replies.clone(),
            offline: m.meta.as_ref().is_some_and(|meta| meta.offline),
        }
    }
}

/// The rows of one chat window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// Whose messages are "ours" (get a delivery state): visitors in the widget, agents in the
    /// console.
    own: SenderKind,
    /// Conversations in the order first seen: a visitor whose conversation was resolved starts a
    /// new one, whose `seq` starts again at 1.
    conversations: Vec<String>,
    committed: Vec<Item>,
    pending: Vec<Item>,
    ids: HashSet<String>,
}

impl Timeline {
    pub fn new(own: SenderKind) -> Self {
        Timeline {
            own,
            conversations: Vec::new(),
            committed: Vec::new(),
            pending: Vec::new(),
            ids: HashSet::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.committed.is_empty() && self.pending.is_empty()
    }

    pub fn len(&self) -> usize {
        self.committed.len() + self.pending.len()
    }

    fn rank(&mut self, conversation_id: &str) -> usize {
        match self.conversations.iter().position(|c| c == conversation_id) {
            Some(i) => i,
            None => {
                self.conversations.push(conversation_id.to_owned());
                self.conversations.len() - 1
            }
        }
    }

    fn rank_of(&self, item: &Item) -> usize {
        item.conversation_id
            .as_deref()
            .and_then(|c| self.conversations.iter().position(|x| x == c))
            .unwrap_or(usize::MAX)
    }

    /// Adds a committed message. Returns false when it was already shown.
    pub fn apply_message(&mut self, m: &Message) -> bool {
        if self.ids.contains(&m.id) {
            return false;
        }
        if let Some(cmid) = &m.client_msg_id
            && m.sender.kind == self.own
        {
            self.pending
                .retain(|p| p.client_msg_id.as_deref() != Some(cmid.as_str()));
        }
        let rank = self.rank(&m.conversation_id);
        let at = self
            .committed
            .partition_point(|x| (self.rank_of(x), x.seq) <= (rank, m.seq));
        self.committed.insert(at, Item::from_message(m));
        self.ids.insert(m.id.clone());
        true
    }

    /// The server committed one of our sends. Returns false when the message was already shown.
    pub fn apply_ack(&mut self, client_msg_id: &str, m: &Message) -> bool {
        self.pending
            .retain(|p| p.client_msg_id.as_deref() != Some(client_msg_id));
        self.apply_message(m)
    }

    /// Shows a message we are about to send.
    pub fn add_pending(&mut self, client_msg_id: &str, body: &str, private: bool, now: &str) {
        self.pending.push(Item {
            id: client_msg_id.to_owned(),
            committed: false,
            conversation_id: None,
            seq: 0,
            sender: self.own,
            sender_name: None,
            body: body.to_owned(),
            private,
            created_at: now.to_owned(),
            client_msg_id: Some(client_msg_id.to_owned()),
            delivery: Some(Delivery::Sending),
            quick_replies: Vec::new(),
            offline: false,
        });
    }

    fn pending_mut(&mut self, client_msg_id: &str) -> Option<&mut Item> {
        self.pending
            .iter_mut()
            .find(|p| p.client_msg_id.as_deref() == Some(client_msg_id))
    }

    /// Marks a pending send as failed. Returns false if it is no longer pending.
    pub fn fail(&mut self, client_msg_id: &str) -> bool {
        match self.pending_mut(client_msg_id) {
            Some(p) if p.delivery == Some(Delivery::Sending) => {
                p.delivery = Some(Delivery::Failed);
                true
            }
            _ => false,
        }
    }

    /// Marks a failed send as sending again and returns its body and privacy.
    pub fn retry(&mut self, client_msg_id: &str) -> Option<(String, bool)> {
        let p = self.pending_mut(client_msg_id)?;
        p.delivery = Some(Delivery::Sending);
        Some((p.body.clone(), p.private))
    }

    pub fn is_sending(&self, client_msg_id: &str) -> bool {
        self.pending.iter().any(|p| {
            p.client_msg_id.as_deref() == Some(client_msg_id)
                && p.delivery == Some(Delivery::Sending)
        })
    }

    /// Sends still waiting for their ack, oldest first: (client_msg_id, body, private).
    pub fn unacked(&self) -> Vec<(String, String, bool)> {
        self.pending
            .iter()
            .filter(|p| p.delivery == Some(Delivery::Sending))
            .filter_map(|p| Some((p.client_msg_id.clone()?, p.body.clone(), p.private)))
            .collect()
    }

    /// The highest `seq` shown for a conversation (0 if none).
    pub fn last_seq(&self, conversation_id: &str) -> u64 {
        self.committed
            .iter()
            .filter(|i| i.conversation_id.as_deref() == Some(conversation_id))
            .map(|i| i.seq)
            .max()
            .unwrap_or(0)
    }

    /// The rows to draw: committed in order, then pending; the newest committed message of ours
    /// says "sent" unless a newer send of ours is still pending.
    pub fn rows(&self) -> Vec<Item> {
        let mut rows: Vec<Item> = self.committed.to_vec();
        if self.pending.iter().all(|p| p.sender != self.own)
            && let Some(last) = rows.iter_mut().rev().find(|i| i.sender == self.own)
        {
            last.delivery = Some(Delivery::Sent);
        }
        rows.extend(self.pending.iter().cloned());
        rows
    }

    /// The newest committed message.
    pub fn last(&self) -> Option<&Item> {
        self.committed.last()
    }

    /// The id of the newest bot message that offers quick replies.
    pub fn quick_replies_at(&self) -> Option<String> {
        self.committed
            .iter()
            .rev()
            .find(|i| i.sender == SenderKind::Bot && !i.quick_replies.is_empty())
            .map(|i| i.id.clone())
    }

    /// The visitor is talking to the bot: the newest conversation's latest bot message is newer
    /// than any agent reply or system note (a hand-over) in it.
    pub fn with_bot(&self) -> bool {
        let Some(current) = self
            .committed
            .last()
            .and_then(|i| i.conversation_id.clone())
        else {
            return false;
        };
        let mut rows = self
            .committed
            .iter()
            .rev()
            .filter(|i| i.conversation_id.as_deref() == Some(current.as_str()))
            .map(|i| i.sender);
        rows.find(|k| *k != SenderKind::Visitor) == Some(SenderKind::Bot)
    }

    /// The id of the newest "no agent is online" note, if that is where the chat stands: no agent
    /// has written since.
    pub fn offline_note(&self) -> Option<String> {
        for i in self.committed.iter().rev() {
            if i.offline {
                return Some(i.id.clone());
            }
            if i.sender == SenderKind::Agent {
                return None;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu::model::Sender;

    fn msg(id: &str, conv: &str, seq: u64, kind: SenderKind, cmid: Option<&str>) -> Message {
        Message {
            id: id.into(),
            conversation_id: conv.into(),
            seq,
            sender: Sender {
                kind,
                id: "s".into(),
                name: None,
            },
            body: format!("body {id}"),
            private: false,
            client_msg_id: cmid.map(Into::into),
            created_at: "2026-11-27T10:00:00Z".into(),
            quick_replies: Vec::new(),
            meta: None,
        }
    }

    fn ids(t: &Timeline) -> Vec<String> {
        t.rows().into_iter().map(|i| i.id).collect()
    }

    #[test]
    fn keeps_seq_order_and_drops_duplicates() {
        let mut t = Timeline::new(SenderKind::Visitor);
        assert!(t.apply_message(&msg("b", "c", 2, SenderKind::Agent, None)));
        assert!(t.apply_message(&msg("a", "c", 1, SenderKind::Visitor, Some("x"))));
        assert!(!t.apply_message(&msg("b", "c", 2, SenderKind::Agent, None)));
        assert!(t.apply_message(&msg("d", "c", 4, SenderKind::Agent, None)));
        assert!(t.apply_message(&msg("c", "c", 3, SenderKind::Agent, None)));
        assert_eq!(ids(&t), ["a", "b", "c", "d"]);
        assert_eq!(t.last_seq("c"), 4);
    }

    #[test]
    fn an_ack_or_a_replay_replaces_the_pending_row() {
        let mut t = Timeline::new(SenderKind::Visitor);
        t.add_pending("x1", "hello", false, "now");
        t.add_pending("x2", "again", false, "now");
        assert_eq!(t.unacked().len(), 2);
        assert!(t.apply_ack("x1", &msg("m1", "c", 1, SenderKind::Visitor, Some("x1"))));
        // The replayed copy of the same message after a reconnect is not shown twice.
        assert!(!t.apply_message(&msg("m1", "c", 1, SenderKind::Visitor, Some("x1"))));
        // A replayed message whose ack was lost takes the place of its pending row.
        assert!(t.apply_message(&msg("m2", "c", 2, SenderKind::Visitor, Some("x2"))));
        assert_eq!(ids(&t), ["m1", "m2"]);
        assert!(t.unacked().is_empty());
        let rows = t.rows();
        assert_eq!(rows[0].delivery, None);
        assert_eq!(rows[1].delivery, Some(Delivery::Sent));
    }

    #[test]
    fn failed_sends_can_be_retried() {
        let mut t = Timeline::new(SenderKind::Agent);
        t.add_pending("x", "hi", true, "now");
        assert!(t.fail("x"));
        assert!(t.unacked().is_empty());
        assert_eq!(t.rows()[0].delivery, Some(Delivery::Failed));
        assert_eq!(t.retry("x"), Some(("hi".into(), true)));
        assert!(t.is_sending("x"));
        assert!(!t.fail("nope"));
    }

    fn bot(id: &str, seq: u64, replies: &[&str]) -> Message {
        let mut m = msg(id, "c", seq, SenderKind::Bot, None);
        m.quick_replies = replies.iter().map(|r| (*r).to_owned()).collect();
        m
    }

    #[test]
    fn the_bot_holds_the_chat_until_a_hand_over() {
        let mut t = Timeline::new(SenderKind::Visitor);
        assert!(!t.with_bot());
        t.apply_message(&bot("w", 1, &[]));
        t.apply_message(&msg("v", "c", 2, SenderKind::Visitor, None));
        t.apply_message(&bot("a", 3, &["Track my order", "Talk to a person"]));
        assert!(t.with_bot());
        assert_eq!(t.quick_replies_at().as_deref(), Some("a"));
        assert_eq!(t.rows()[2].quick_replies.len(), 2);
        // The visitor writing again does not end it; a newer answer without suggestions keeps
        // the older suggestions.
        t.apply_message(&msg("v2", "c", 4, SenderKind::Visitor, None));
        assert!(t.with_bot());
        t.apply_message(&bot("b", 5, &[]));
        assert_eq!(t.quick_replies_at().as_deref(), Some("a"));
        let mut note = msg("s", "c", 6, SenderKind::System, None);
        note.meta = Some(kefu::model::MessageMeta {
            offline: true,
            ..Default::default()
        });
        t.apply_message(&note);
        assert!(!t.with_bot());
        assert_eq!(t.offline_note().as_deref(), Some("s"));
        t.apply_message(&msg("r", "c", 7, SenderKind::Agent, None));
        assert!(!t.with_bot());
        assert_eq!(t.offline_note(), None);
    }

    #[test]
    fn a_new_conversation_sorts_after_the_old_one() {
        let mut t = Timeline::new(SenderKind::Visitor);
        t.apply_message(&msg("a", "old", 5, SenderKind::Visitor, None));
        t.apply_message(&msg("b", "new", 1, SenderKind::Visitor, None));
        t.apply_message(&msg("c", "old", 6, SenderKind::Agent, None));
        assert_eq!(ids(&t), ["a", "c", "b"]);
        assert_eq!(t.last_seq("new"), 1);
    }
}
