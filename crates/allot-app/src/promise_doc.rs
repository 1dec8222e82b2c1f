//! The documents behind promising (issue 5): carriers with their services, and node
//! calendars. Parsed strictly (unknown fields refused), validated with every offending
//! field named, and turned into the core's calendar types ([`allot_core::promise`]).
//!
//! Shapes (JSON):
//! - carrier: `{"name", "services": [{"code", "service_level": "standard"|"express"|
//!   "next_day"|"same_day", "transit_days": [{"max_km", "days"}], "pickup_cutoff_local":
//!   "HH:MM", "delivery_weekdays": ["mon", …], "holidays": ["YYYY-MM-DD", …],
//!   "max_package_weight_g": u32|null, "rates": [{"max_km", "base_minor", "per_kg_minor"}]}]}`
//! - node calendar: `{"hours": {"mon": ["09:00", "21:00"], …}, "holidays": [dates],
//!   "processing_minutes", "pickup_ready_minutes", "carrier_services": ["ups:ground", …]}`

use std::collections::BTreeSet;

use allot_core::promise::{NodeCalendar, OpeningHours, ServiceCalendar};
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::FieldError;

/// Most services one carrier may list, and most bands in a table.
pub const SERVICES_MAX: usize = 50;
pub const BANDS_MAX: usize = 50;
/// Most holidays a calendar may list.
pub const HOLIDAYS_MAX: usize = 400;
/// Longest processing or pickup preparation accepted (a week of open minutes).
pub const PREPARATION_MINUTES_MAX: u32 = 7 * 24 * 60;

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandDoc {
    pub max_km: f64,
    pub days: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateDoc {
    pub max_km: f64,
    pub base_minor: i64,
    #[serde(default)]
    pub per_kg_minor: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDoc {
    pub code: String,
    pub service_level: String,
    pub transit_days: Vec<BandDoc>,
    pub pickup_cutoff_local: String,
    #[serde(default = "all_weekdays_but_sunday")]
    pub delivery_weekdays: Vec<String>,
    #[serde(default)]
    pub holidays: Vec<String>,
    #[serde(default)]
    pub max_package_weight_g: Option<u32>,
    #[serde(default)]
    pub rates: Vec<RateDoc>,
}

fn all_weekdays_but_sunday() -> Vec<String> {
    WEEKDAYS[..6].iter().map(|d| (*d).to_owned()).collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierDoc {
    pub name: String,
    pub services: Vec<ServiceDoc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeCalendarDoc {
    /// Weekday (`mon` … `sun`) → `["HH:MM", "HH:MM"]`; a missing weekday is closed.
    pub hours: std::collections::BTreeMap<String, [String; 2]>,
    #[serde(default)]
    pub holidays: Vec<String>,
    pub processing_minutes: u32,
    #[serde(default)]
    pub pickup_ready_minutes: u32,
    /// `carrier_id:service_code` the node can hand parcels to.
    #[serde(default)]
    pub carrier_services: Vec<String>,
    /// Same-day deliveries the node can send per local day (absent: no same-day from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_day_slots: Option<u32>,
}

/// Most same-day slots a node may offer per day.
pub const SAME_DAY_SLOTS_MAX: u32 = 100_000;

/// A carrier service ready for promising.
#[derive(Debug, Clone, PartialEq)]
pub struct CarrierService {
    /// `carrier_id:code`.
    pub key: String,
    pub service_level: String,
    pub calendar: ServiceCalendar,
    pub max_package_weight_g: Option<u32>,
    /// (max_km, base_minor, per_kg_minor), ascending.
    pub rates: Vec<(f64, i64, i64)>,
}

fn time(text: &str) -> Option<Time> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

fn dates(field: &str, list: &[String], errors: &mut Vec<FieldError>) -> BTreeSet<Date> {
    if list.len() > HOLIDAYS_MAX {
        errors.push(FieldError::new(field, format!("at most {HOLIDAYS_MAX} dates")));
    }
    list.iter()
        .enumerate()
        .filter_map(|(i, d)| match d.parse::<Date>() {
            Ok(date) => Some(date),
            Err(_) => {
                errors.push(FieldError::new(format!("{field}[{i}]"), "a date YYYY-MM-DD"));
                None
            }
        })
        .collect()
}

fn ascending(field: &str, kms: impl Iterator<Item = f64>, errors: &mut Vec<FieldError>) {
    let mut last = 0.0;
    for (i, km) in kms.enumerate() {
        if !(km.is_finite() && km > last) {
            errors.push(FieldError::new(format!("{field}[{i}].max_km"), "positive and ascending"));
        }
        last = km;
    }
}

/// Validates a carrier document; its services keyed `carrier_id:code`.
pub fn carrier_services(carrier_id: &str, doc: &CarrierDoc) -> Result<Vec<CarrierService>, Vec<FieldError>> {
    let mut errors = Vec::new();
    if doc.name.trim().is_empty() || doc.name.chars().count() > 100 {
        errors.push(FieldError::new("name", "1–100 characters"));
    }
    if doc.services.is_empty() || doc.services.len() > SERVICES_MAX {
        errors.push(FieldError::new("services", format!("1–{SERVICES_MAX} services")));
    }
    let mut out = Vec::new();
    for (i, s) in doc.services.iter().enumerate() {
        let at = |f: &str| format!("services[{i}].{f}");
        let ok_code = !s.code.is_empty()
            && s.code.len() <= 40
            && s.code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok_code {
            errors.push(FieldError::new(at("code"), "1–40 characters of A–Z, a–z, 0–9, _ -"));
        } else if doc.services[..i].iter().any(|o| o.code == s.code) {
            errors.push(FieldError::new(at("code"), "repeated"));
        }
        if allot_core::ServiceLevel::parse(&s.service_level).is_none() {
            errors
                .push(FieldError::new(at("service_level"), format!("one of {}", allot_core::ServiceLevel::expected())));
        }
        if s.transit_days.is_empty() || s.transit_days.len() > BANDS_MAX {
            errors.push(FieldError::new(at("transit_days"), format!("1–{BANDS_MAX} bands")));
        }
        ascending(&at("transit_days"), s.transit_days.iter().map(|b| b.max_km), &mut errors);
        if s.rates.len() > BANDS_MAX {
            errors.push(FieldError::new(at("rates"), format!("at most {BANDS_MAX} bands")));
        }
        ascending(&at("rates"), s.rates.iter().map(|r| r.max_km), &mut errors);
        for (j, r) in s.rates.iter().enumerate() {
            if r.base_minor < 0 || r.per_kg_minor < 0 {
                errors.push(FieldError::new(format!("{}[{j}]", at("rates")), "amounts must not be negative"));
            }
        }
        let cutoff = time(&s.pickup_cutoff_local);
        if cutoff.is_none() {
            errors.push(FieldError::new(at("pickup_cutoff_local"), "a local time HH:MM"));
        }
        let mut weekdays = [false; 7];
        for (j, d) in s.delivery_weekdays.iter().enumerate() {
            match WEEKDAYS.iter().position(|w| w == d) {
                Some(k) => weekdays[k] = true,
                None => errors.push(FieldError::new(format!("{}[{j}]", at("delivery_weekdays")), "mon … sun")),
            }
        }
        if !weekdays.iter().any(|d| *d) {
            errors.push(FieldError::new(at("delivery_weekdays"), "at least one delivery day"));
        }
        let holidays = dates(&at("holidays"), &s.holidays, &mut errors);
        if let Some(cutoff) = cutoff {
            out.push(CarrierService {
                key: format!("{carrier_id}:{}", s.code),
                service_level: s.service_level.clone(),
                calendar: ServiceCalendar {
                    transit_days: s.transit_days.iter().map(|b| (b.max_km, b.days)).collect(),
                    pickup_cutoff_local: cutoff,
                    delivery_weekdays: weekdays,
                    holidays,
                },
                max_package_weight_g: s.max_package_weight_g,
                rates: s.rates.iter().map(|r| (r.max_km, r.base_minor, r.per_kg_minor)).collect(),
            });
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// Validates a node calendar for a node in `time_zone`; answers the calendar and the
/// carrier services (`carrier:code`) the node hands to.
pub fn node_calendar(time_zone: &str, doc: &NodeCalendarDoc) -> Result<(NodeCalendar, Vec<String>), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut hours: [Option<OpeningHours>; 7] = [None; 7];
    for (day, [open, close]) in &doc.hours {
        let field = format!("hours.{day}");
        let Some(k) = WEEKDAYS.iter().position(|w| w == day) else {
            errors.push(FieldError::new(field, "a weekday: mon … sun"));
            continue;
        };
        match (time(open), time(close)) {
            (Some(o), Some(c)) if c > o => hours[k] = Some(OpeningHours { open: o, close: c }),
            (Some(_), Some(_)) => errors.push(FieldError::new(field, "closing must be after opening")),
            _ => errors.push(FieldError::new(field, "[\"HH:MM\", \"HH:MM\"]")),
        }
    }
    let holidays = dates("holidays", &doc.holidays, &mut errors);
    for (field, v) in
        [("processing_minutes", doc.processing_minutes), ("pickup_ready_minutes", doc.pickup_ready_minutes)]
    {
        if v > PREPARATION_MINUTES_MAX {
            errors.push(FieldError::new(field, format!("at most {PREPARATION_MINUTES_MAX}")));
        }
    }
    if doc.same_day_slots.is_some_and(|n| n > SAME_DAY_SLOTS_MAX) {
        errors.push(FieldError::new("same_day_slots", format!("at most {SAME_DAY_SLOTS_MAX}")));
    }
    for (i, s) in doc.carrier_services.iter().enumerate() {
        let ok = s.split_once(':').is_some_and(|(c, code)| !c.is_empty() && !code.is_empty()) && s.len() <= 105;
        if !ok {
            errors.push(FieldError::new(format!("carrier_services[{i}]"), "carrier_id:service_code"));
        }
    }
    let tz = match TimeZone::get(time_zone) {
        Ok(tz) => Some(tz),
        Err(_) => {
            errors.push(FieldError::new("time_zone", format!("the node's time zone {time_zone:?} is unknown")));
            None
        }
    };
    match tz {
        Some(time_zone) if errors.is_empty() => Ok((
            NodeCalendar {
                time_zone,
                hours,
                holidays,
                processing_minutes: doc.processing_minutes,
                pickup_ready_minutes: doc.pickup_ready_minutes,
            },
            doc.carrier_services.clone(),
        )),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_carrier_becomes_service_calendars_keyed_by_carrier_and_code() {
        let doc: CarrierDoc = parse(serde_json::json!({"name": "UPS", "services": [
            {"code": "ground", "service_level": "standard", "pickup_cutoff_local": "17:30",
             "transit_days": [{"max_km": 300.0, "days": 1}, {"max_km": 5000.0, "days": 5}],
             "holidays": ["2026-12-25"], "rates": [{"max_km": 5000.0, "base_minor": 900}]}]}));
        let s = carrier_services("ups", &doc).unwrap();
        assert_eq!(s[0].key, "ups:ground");
        assert_eq!(s[0].calendar.pickup_cutoff_local, Time::new(17, 30, 0, 0).unwrap());
        assert_eq!(s[0].calendar.delivery_weekdays, [true, true, true, true, true, true, false]);
        assert!(s[0].calendar.holidays.contains(&"2026-12-25".parse().unwrap()));
    }

    #[test]
    fn every_bad_carrier_field_is_named() {
        let doc: CarrierDoc = parse(serde_json::json!({"name": "", "services": [
            {"code": "a b", "service_level": "warp", "pickup_cutoff_local": "25:00",
             "transit_days": [{"max_km": 500.0, "days": 1}, {"max_km": 100.0, "days": 2}],
             "delivery_weekdays": ["caturday"], "holidays": ["tomorrow"]}]}));
        let fields: Vec<String> = carrier_services("x", &doc).unwrap_err().into_iter().map(|e| e.field).collect();
        for f in [
            "name",
            "services[0].code",
            "services[0].service_level",
            "services[0].transit_days[1].max_km",
            "services[0].pickup_cutoff_local",
            "services[0].delivery_weekdays[0]",
            "services[0].delivery_weekdays",
            "services[0].holidays[0]",
        ] {
            assert!(fields.iter().any(|x| x == f), "{f} not in {fields:?}");
        }
        assert!(
            serde_json::from_value::<CarrierDoc>(serde_json::json!({"name": "x", "services": [], "colour": 1}))
                .is_err()
        );
    }

    #[test]
    fn a_node_calendar_keeps_local_hours_and_refuses_nonsense() {
        let doc: NodeCalendarDoc =
            parse(serde_json::json!({"hours": {"mon": ["09:00", "21:00"], "sun": ["10:00", "18:00"]},
            "holidays": ["2026-11-26"], "processing_minutes": 60, "pickup_ready_minutes": 120,
            "carrier_services": ["ups:ground"]}));
        let (cal, services) = node_calendar("America/Chicago", &doc).unwrap();
        assert_eq!(cal.hours[0].unwrap().open, Time::new(9, 0, 0, 0).unwrap());
        assert!(cal.hours[1].is_none(), "tuesday not listed: closed");
        assert_eq!(services, ["ups:ground"]);
        let bad: NodeCalendarDoc =
            parse(serde_json::json!({"hours": {"mon": ["21:00", "09:00"], "funday": ["09:00", "10:00"]},
            "processing_minutes": 99999, "carrier_services": ["ground"]}));
        let fields: Vec<String> =
            node_calendar("Mars/Olympus", &bad).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["hours.funday", "hours.mon", "processing_minutes", "carrier_services[0]", "time_zone"]);
    }
}
