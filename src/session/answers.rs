//! Whose ParseComplete, BindComplete and CloseComplete is it: the client's,
//! or one answering a message pgwarden added (a prepared MERGE's images).
//! PostgreSQL answers messages in order, skips to the next Sync after an
//! error, and ends each Sync, Query and FunctionCall with ReadyForQuery.

use std::collections::VecDeque;

/// An answer PostgreSQL still owes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owed {
    /// The client's Parse, Bind or Close.
    Client,
    /// pgwarden's own Parse, Bind or Close.
    Own,
    /// A ReadyForQuery (Sync, Query, FunctionCall).
    Ready,
}

/// Answers owed, in the order the messages were sent.
#[derive(Debug, Default)]
pub struct Answers {
    queue: VecDeque<Owed>,
}

impl Answers {
    /// A client message (type `tag`) went to the server.
    pub fn client_sent(&mut self, tag: u8) {
        match tag {
            b'P' | b'B' | b'C' => self.queue.push_back(Owed::Client),
            b'S' | b'Q' | b'F' => self.queue.push_back(Owed::Ready),
            _ => {}
        }
    }

    /// pgwarden sent a Parse, Bind or Close of its own.
    pub fn own_sent(&mut self) {
        self.queue.push_back(Owed::Own);
    }

    /// A server message of type `tag`; true when it answers pgwarden's own
    /// message and is withheld from the client.
    pub fn answered(&mut self, tag: u8) -> bool {
        match tag {
            b'1' | b'2' | b'3' => match self.queue.front() {
                Some(Owed::Client) => {
                    self.queue.pop_front();
                    false
                }
                Some(Owed::Own) => {
                    self.queue.pop_front();
                    true
                }
                // Not expected: leave the queue, let the client see it.
                _ => false,
            },
            // Everything up to the Sync is skipped.
            b'E' => {
                while self.queue.front().is_some_and(|o| *o != Owed::Ready) {
                    self.queue.pop_front();
                }
                false
            }
            b'Z' => {
                while let Some(o) = self.queue.pop_front() {
                    if o == Owed::Ready {
                        break;
                    }
                }
                false
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_answers_are_told_from_the_clients() {
        let mut a = Answers::default();
        for t in [b'P', b'B'] {
            a.client_sent(t);
        }
        a.own_sent();
        a.own_sent();
        a.client_sent(b'E');
        a.own_sent();
        a.client_sent(b'S');
        let got: Vec<bool> = [b'1', b'2', b'1', b'2', b'C', b'3', b'Z']
            .into_iter()
            .map(|t| a.answered(t))
            .collect();
        assert_eq!(got, [false, false, true, true, false, true, false]);
        assert!(a.queue.is_empty());
    }

    #[test]
    fn an_error_skips_to_the_sync() {
        let mut a = Answers::default();
        a.client_sent(b'P');
        a.own_sent();
        a.client_sent(b'B');
        a.client_sent(b'S');
        a.client_sent(b'P');
        a.client_sent(b'S');
        assert!(!a.answered(b'E'));
        assert!(!a.answered(b'Z'));
        // The next request's ParseComplete is the client's.
        assert!(!a.answered(b'1'));
        assert!(!a.answered(b'Z'));
        assert!(a.queue.is_empty());
        // A simple Query: its error and ReadyForQuery.
        a.client_sent(b'Q');
        a.own_sent();
        assert!(!a.answered(b'E'));
        assert!(!a.answered(b'Z'));
        assert!(a.answered(b'1'));
    }
}
