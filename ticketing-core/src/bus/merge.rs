//! Several consumers as one member: a group on several subjects one by one, an ordered group's
//! partitions.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The group's consumer on each of `subjects`, as [`Bus::subscribe`] makes them, merged into
/// one member: [`Bus::subscribe_many`] where a backend has no consumer of several subjects (the
/// in-memory bus; the listener runtime on a nats-server older than 2.10).
pub async fn subscribe_each<B: Bus + ?Sized>(
    bus: &B,
    subjects: &[&str],
    group: &str,
    options: SubscribeOptions,
) -> Result<Box<dyn Subscription>, BusError> {
    let mut members: Vec<Box<dyn Subscription>> = Vec::with_capacity(subjects.len());
    for subject in subjects {
        match bus.subscribe(subject, group, options).await {
            Ok(member) => members.push(member),
            Err(error) => {
                for member in members {
                    let _ = member.close().await;
                }
                return Err(error);
            }
        }
    }
    Ok(Box::new(Merged { members, first: 0 }))
}

/// What names an ordered group ([`Bus::subscribe_ordered`]) on the broker: `{group}--{subject}`
/// on one subject (`.` written `_`), as a plain group's consumer on it; the group alone on
/// several, as [`Bus::subscribe_many`]'s consumer.
pub fn ordered_group_name(group: &str, subjects: &[&str]) -> String {
    match subjects {
        [subject] => format!("{group}--{}", subject.replace('.', "_")),
        _ => group.to_owned(),
    }
}

/// Members of several consumers as one: each `next` takes the first delivery any of them has,
/// starting the race with another member each time so that a busy subject does not starve
/// the others.
struct Merged {
    members: Vec<Box<dyn Subscription>>,
    first: usize,
}

#[async_trait]
impl Subscription for Merged {
    async fn next(&mut self) -> Option<Result<Delivery, BusError>> {
        if self.members.is_empty() {
            return None;
        }
        let first = self.first % self.members.len();
        self.first = first + 1;
        let (before, after) = self.members.split_at_mut(first);
        let racing = after.iter_mut().chain(before).map(|member| member.next());
        // Each member's `next` is cancel-safe: the losers lose nothing.
        let (delivery, _, _) = futures::future::select_all(racing).await;
        delivery
    }

    fn try_next(&mut self) -> Option<Result<Delivery, BusError>> {
        let count = self.members.len();
        (0..count).find_map(|k| {
            let i = (self.first + k) % count;
            let delivery = self.members[i].try_next()?;
            self.first = i + 1;
            Some(delivery)
        })
    }

    async fn close(self: Box<Self>) -> Result<(), BusError> {
        let mut outcome = Ok(());
        for member in self.members {
            if let Err(error) = member.close().await {
                outcome = Err(error);
            }
        }
        outcome
    }
}
