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
