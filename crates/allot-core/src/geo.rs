//! Points on the Earth and great-circle distance.
//!
//! Decision: the haversine formula is written here (a dozen lines, tested against known
//! city distances) instead of pulling the `geo` crate, whose dependency tree costs build
//! time on our 2-core machines for one function. When delivery-zone polygons arrive,
//! `geo` (default features off) replaces this module.

/// Mean Earth radius used for great-circle distances (IUGG), in kilometres.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// A WGS 84 coordinate; latitude in [-90, 90], longitude in [-180, 180], both finite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    lat: f64,
    lon: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum GeoError {
    #[error("latitude must be a number in [-90, 90], got {0}")]
    Latitude(f64),
    #[error("longitude must be a number in [-180, 180], got {0}")]
    Longitude(f64),
}

impl GeoPoint {
    pub fn new(lat: f64, lon: f64) -> Result<GeoPoint, GeoError> {
        if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
            return Err(GeoError::Latitude(lat));
        }
        if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
            return Err(GeoError::Longitude(lon));
        }
        Ok(GeoPoint { lat, lon })
    }

    pub fn lat(self) -> f64 {
        self.lat
    }

    pub fn lon(self) -> f64 {
        self.lon
    }

    /// Great-circle (haversine) distance in kilometres.
    pub fn distance_km(self, other: GeoPoint) -> f64 {
        let (phi1, phi2) = (self.lat.to_radians(), other.lat.to_radians());
        let d_phi = (other.lat - self.lat).to_radians();
        let d_lambda = (other.lon - self.lon).to_radians();
        let a = (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_matches_known_city_pairs() {
        let nyc = GeoPoint::new(40.71427, -74.00597).unwrap();
        let la = GeoPoint::new(34.05223, -118.24368).unwrap();
        let d = nyc.distance_km(la);
        // Published great-circle distance NYC–LA ≈ 3,936 km.
        assert!((d - 3936.0).abs() < 10.0, "{d}");
        assert_eq!(nyc.distance_km(nyc), 0.0);
        assert!((nyc.distance_km(la) - la.distance_km(nyc)).abs() < 1e-9);
    }

    #[test]
    fn out_of_range_or_non_finite_coordinates_are_rejected() {
        assert_eq!(GeoPoint::new(90.1, 0.0), Err(GeoError::Latitude(90.1)));
        assert_eq!(GeoPoint::new(0.0, -180.5), Err(GeoError::Longitude(-180.5)));
        assert!(GeoPoint::new(f64::NAN, 0.0).is_err());
        assert!(GeoPoint::new(0.0, f64::INFINITY).is_err());
        assert!(GeoPoint::new(-90.0, 180.0).is_ok());
    }
}
