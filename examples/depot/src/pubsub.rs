//! Topics: a publish reaches every connection subscribed at that moment. Each topic is a tokio
//! broadcast channel; a subscriber too slow to keep up loses the oldest messages and is told how
//! many, rather than holding up the publisher.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::util::clock::Millis;

/// Messages a topic buffers for its slowest subscriber.
const TOPIC_BUFFER: usize = 256;

/// One published message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub topic: String,
    pub payload: String,
    /// Server-wide publish order.
    pub sequence: u64,
    pub published_at: Millis,
}

/// A topic's name and subscriber count, for `TOPICS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    pub topic: String,
    pub subscribers: usize,
    pub published: u64,
}

#[derive(Debug)]
struct Topic {
    sender: broadcast::Sender<Message>,
    published: u64,
}

/// Every topic.
#[derive(Debug, Default)]
pub struct PubSub {
    topics: Mutex<BTreeMap<String, Topic>>,
    sequence: AtomicU64,
}

impl PubSub {
    pub fn new() -> Self {
        PubSub::default()
    }

    fn topics(&self) -> MutexGuard<'_, BTreeMap<String, Topic>> {
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver of every message published on `topic` from now on.
    pub fn subscribe(&self, topic: &str) -> broadcast::Receiver<Message> {
        let mut topics = self.topics();
        let entry = topics.entry(topic.to_owned()).or_insert_with(|| Topic {
            sender: broadcast::channel(TOPIC_BUFFER).0,
            published: 0,
        });
        entry.sender.subscribe()
    }

    /// Sends `payload` to the subscribers of `topic`; returns how many there were.
    pub fn publish(&self, topic: &str, payload: &str, now: Millis) -> usize {
        let mut topics = self.topics();
        let Some(entry) = topics.get_mut(topic) else {
            return 0;
        };
        entry.published += 1;
        let message = Message {
            topic: topic.to_owned(),
            payload: payload.to_owned(),
            sequence: self.sequence.fetch_add(1, Ordering::Relaxed) + 1,
            published_at: now,
        };
        entry.sender.send(message).unwrap_or(0)
    }

    /// Topics with subscribers, by name.
    pub fn list(&self) -> Vec<TopicInfo> {
        self.topics()
            .iter()
            .map(|(topic, entry)| TopicInfo {
                topic: topic.clone(),
                subscribers: entry.sender.receiver_count(),
                published: entry.published,
            })
            .collect()
    }

    /// Forgets topics nobody listens to any more; returns how many.
    pub fn prune(&self) -> usize {
        let mut topics = self.topics();
        let before = topics.len();
        topics.retain(|_, entry| entry.sender.receiver_count() > 0);
        before - topics.len()
    }

    pub fn published(&self) -> u64 {
        self.sequence.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_get_what_is_published_after_they_subscribe() {
        let pubsub = PubSub::new();
        assert_eq!(pubsub.publish("news", "nobody hears this", 1), 0);
        let mut first = pubsub.subscribe("news");
        let mut second = pubsub.subscribe("news");
        assert_eq!(pubsub.publish("news", "hello", 2), 2);
        assert_eq!(first.recv().await.unwrap().payload, "hello");
        let message = second.recv().await.unwrap();
        // Publishing to a topic nobody follows numbers nothing.
        assert_eq!((message.sequence, message.published_at), (1, 2));
        assert_eq!(pubsub.list()[0].subscribers, 2);
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_what_it_missed() {
        let pubsub = PubSub::new();
        let mut slow = pubsub.subscribe("t");
        for i in 0..TOPIC_BUFFER + 3 {
            pubsub.publish("t", &i.to_string(), 0);
        }
        assert_eq!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(3))
        );
        assert_eq!(slow.recv().await.unwrap().payload, "3");
    }

    #[test]
    fn topics_without_subscribers_are_pruned() {
        let pubsub = PubSub::new();
        let kept = pubsub.subscribe("kept");
        drop(pubsub.subscribe("gone"));
        assert_eq!(pubsub.prune(), 1);
        assert_eq!(pubsub.list().len(), 1);
        drop(kept);
    }
}
