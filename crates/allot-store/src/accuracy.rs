//! Delivery observations: what each delivered shipment took, per lane (origin node →
//! destination region, carrier service), for the promise accuracy report and learned
//! transit times.

use crate::{Result, Store, Tx, on_read, on_tx};

/// One delivered shipment.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryObservation {
    pub shipment_id: String,
    pub order_id: String,
    pub node_id: String,
    pub region: String,
    pub carrier_service: String,
    pub shipped_at_ms: i64,
    pub delivered_at_ms: i64,
    pub transit_days: i64,
    pub promised_date: Option<String>,
    pub days_late: Option<i64>,
}

/// A lane and one value with how many deliveries had it (a histogram row).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LaneCount {
    pub node_id: String,
    pub region: String,
    pub carrier_service: String,
    pub value: i64,
    pub deliveries: i64,
}

impl Tx {
    /// Records a delivery (once per shipment; a repeat changes nothing).
    pub async fn insert_delivery_observation(&mut self, o: &DeliveryObservation) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO delivery_observations (shipment_id, order_id, node_id, region, carrier_service, \
                   shipped_at_ms, delivered_at_ms, transit_days, promised_date, days_late) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (shipment_id) DO NOTHING",
            )
            .bind(&o.shipment_id)
            .bind(&o.order_id)
            .bind(&o.node_id)
            .bind(&o.region)
            .bind(&o.carrier_service)
            .bind(o.shipped_at_ms)
            .bind(o.delivered_at_ms)
            .bind(o.transit_days)
            .bind(&o.promised_date)
            .bind(o.days_late)
            .execute(conn)
            .await?;
        });
        Ok(())
    }
}

impl Store {
    /// Transit days per lane as a histogram, over deliveries in `[from_ms, to_ms)`.
    pub async fn transit_histogram(&self, from_ms: i64, to_ms: i64) -> Result<Vec<LaneCount>> {
        self.lane_histogram("transit_days", from_ms, to_ms).await
    }

    /// Days late (negative: early) per lane as a histogram, over promised deliveries in
    /// `[from_ms, to_ms)`.
    pub async fn lateness_histogram(&self, from_ms: i64, to_ms: i64) -> Result<Vec<LaneCount>> {
        self.lane_histogram("days_late", from_ms, to_ms).await
    }

    async fn lane_histogram(&self, column: &'static str, from_ms: i64, to_ms: i64) -> Result<Vec<LaneCount>> {
        let rows = on_read!(self, |pool| {
            sqlx::query_as::<_, LaneCount>(sqlx::AssertSqlSafe(format!(
                "SELECT node_id, region, carrier_service, {column} AS value, COUNT(*) AS deliveries \
                 FROM delivery_observations \
                 WHERE delivered_at_ms >= $1 AND delivered_at_ms < $2 AND {column} IS NOT NULL \
                 GROUP BY node_id, region, carrier_service, {column} \
                 ORDER BY carrier_service, node_id, region, {column}"
            )))
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}
