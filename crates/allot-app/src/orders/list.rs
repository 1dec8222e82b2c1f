//! The order listing: newest first, filtered, paged by cursor.

use super::*;

impl App {
    /// One page of at most `filter.limit` orders, newest first, with the cursor of the next
    /// page. A channel key sees only its own channel's orders: asking for another channel
    /// finds nothing (as a lookup would answer "not found").
    pub async fn list_orders(
        &self,
        mut filter: allot_store::OrderFilter,
        channel: Option<&ChannelId>,
    ) -> Result<crate::ListPage<allot_store::OrderSummary>> {
        if let Some(c) = channel {
            if filter.channel.as_deref().is_some_and(|f| f != c.as_str()) {
                return Ok(crate::ListPage { entries: Vec::new(), next_cursor: None });
            }
            filter.channel = Some(c.to_string());
        }
        let limit = usize::try_from(filter.limit).unwrap_or(0);
        filter.limit += 1; // one more tells whether another page follows
        let mut entries = self.inner.store.list_orders(&filter).await?;
        let next_cursor = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|o| o.order_id.clone())
        } else {
            None
        };
        Ok(crate::ListPage { entries, next_cursor })
    }
}
