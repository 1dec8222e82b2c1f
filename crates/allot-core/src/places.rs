//! US places (GeoNames, CC BY 4.0; see `data/README.md`), embedded at build time, for the
//! demo network and generated scenarios.

use crate::geo::GeoPoint;

const US_PLACES_CSV: &str = include_str!("../../../data/us_places.csv");

/// A city with its coordinates, population and IANA time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub geonames_id: u64,
    pub name: String,
    pub state: String,
    pub location: GeoPoint,
    pub population: u64,
    pub time_zone: String,
}

/// Every embedded place, largest population first. Lines that do not parse are skipped
/// (the file is generated and checked by a test, so none should be).
pub fn us_places() -> Vec<Place> {
    US_PLACES_CSV.lines().skip(1).filter_map(parse_line).collect()
}

/// The IANA time zone of the nearest embedded place within `max_km` of `at`: an offline
/// time-zone lookup for an address that did not name its zone. US only (the embedded
/// places); right away from zone borders, and within a few tens of km of a border it may
/// give the neighbouring zone. `None` farther than `max_km` from every place.
pub fn nearest_time_zone(at: GeoPoint, max_km: f64) -> Option<&'static str> {
    static PLACES: std::sync::OnceLock<Vec<Place>> = std::sync::OnceLock::new();
    let places = PLACES.get_or_init(us_places);
    places
        .iter()
        .map(|p| (p.location.distance_km(at), p))
        .filter(|(km, _)| *km <= max_km)
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, p)| p.time_zone.as_str())
}

fn parse_line(line: &str) -> Option<Place> {
    let mut f = line.split(',');
    let geonames_id = f.next()?.parse().ok()?;
    let name = f.next()?.to_owned();
    let state = f.next()?.to_owned();
    let lat = f.next()?.parse().ok()?;
    let lon = f.next()?.parse().ok()?;
    let population = f.next()?.parse().ok()?;
    let time_zone = f.next()?.to_owned();
    Some(Place { geonames_id, name, state, location: GeoPoint::new(lat, lon).ok()?, population, time_zone })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_the_time_zone_of_its_nearest_place() {
        let at = |lat, lon| nearest_time_zone(GeoPoint::new(lat, lon).unwrap(), 300.0);
        assert_eq!(at(41.88, -87.63), Some("America/Chicago"));
        assert_eq!(at(33.45, -112.07), Some("America/Phoenix"), "Arizona keeps standard time");
        assert_eq!(at(39.95, -75.16), Some("America/New_York"));
        assert_eq!(at(21.31, -157.86), Some("Pacific/Honolulu"));
        assert_eq!(at(35.0, -40.0), None, "the middle of the Atlantic");
    }
    use crate::network::TimeZoneName;

    #[test]
    fn every_embedded_place_parses_with_a_known_time_zone() {
        let lines = US_PLACES_CSV.lines().count() - 1;
        let places = us_places();
        assert_eq!(places.len(), lines);
        assert!(places.len() > 3000);
        for p in &places {
            assert!(TimeZoneName::parse(&p.time_zone).is_ok(), "{p:?}");
        }
        assert_eq!(places[0].name, "New York City");
        assert_eq!(places[0].time_zone, "America/New_York");
    }
}
