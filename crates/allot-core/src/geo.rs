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

/// A point with its position on the unit sphere, so that the distances from one point to
/// many others can be compared with limits without trigonometry per pair ([`ChordLimit`]).
/// Networks keep one per node; it is computed once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpherePoint {
    point: GeoPoint,
    xyz: [f64; 3],
}

impl SpherePoint {
    pub fn new(point: GeoPoint) -> SpherePoint {
        let (sin_phi, cos_phi) = point.lat.to_radians().sin_cos();
        let (sin_lambda, cos_lambda) = point.lon.to_radians().sin_cos();
        SpherePoint { point, xyz: [cos_phi * cos_lambda, cos_phi * sin_lambda, sin_phi] }
    }

    pub fn point(self) -> GeoPoint {
        self.point
    }

    /// Squared straight-line distance between the two points through the unit sphere:
    /// `(2 sin(d / 2R))²` for a great-circle distance `d`, to within rounding.
    pub fn chord2(self, other: SpherePoint) -> f64 {
        let [x, y, z] = self.xyz;
        let [u, v, w] = other.xyz;
        (x - u) * (x - u) + (y - v) * (y - v) + (z - w) * (z - w)
    }
}

/// A distance limit compared through chords: [`ChordLimit::decide`] answers
/// `a.distance_km(b) <= limit_km` from `a.chord2(b)` alone, or says it cannot tell.
///
/// It answers only outside a window around the limit: ±(1 mm + 10⁻⁹ of the limit) in
/// distance, widened by 10⁻⁹ of the chord and 10⁻¹⁵ absolute. Both the chord and
/// [`GeoPoint::distance_km`] are within about 10⁻¹² of the limit's scale of the exact
/// values (near the antipode, where the haversine loses precision, the relative chord
/// margin still spans some 400 m), so an answer always agrees with `distance_km`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChordLimit {
    /// Chords below: within the limit; above `outside`: beyond it; between: cannot tell.
    within: f64,
    outside: f64,
}

impl ChordLimit {
    pub fn new(limit_km: f64) -> ChordLimit {
        if limit_km.is_nan() || limit_km < 0.0 {
            // No distance compares `<=` with NaN, and none is negative.
            return ChordLimit { within: -1.0, outside: -1.0 };
        }
        if limit_km == f64::INFINITY {
            return ChordLimit { within: f64::INFINITY, outside: f64::INFINITY };
        }
        let margin = 1e-6 + 1e-9 * limit_km;
        let chord2_at = |km: f64| {
            let h = (km / (2.0 * EARTH_RADIUS_KM)).min(std::f64::consts::FRAC_PI_2).sin();
            4.0 * h * h
        };
        let low = limit_km - margin;
        let within = if low <= 0.0 { -1.0 } else { chord2_at(low) * (1.0 - 1e-9) - 1e-15 };
        let outside = chord2_at(limit_km + margin) * (1.0 + 1e-9) + 1e-15;
        ChordLimit { within, outside }
    }

    /// Whether `decide(chord2)` is `Some(false)`: surely beyond the limit.
    pub fn surely_beyond(self, chord2: f64) -> bool {
        chord2 > self.outside
    }

    /// Whether every chord surely beyond `self` is surely beyond `other` too (its limit
    /// is not shorter).
    pub fn not_beyond(self, other: ChordLimit) -> bool {
        self.outside <= other.outside
    }

    /// `Some(distance ≤ limit)` for the points of squared chord `chord2`, or `None` when
    /// too close to the limit to tell (compute [`GeoPoint::distance_km`] then).
    pub fn decide(self, chord2: f64) -> Option<bool> {
        if chord2 < self.within {
            Some(true)
        } else if chord2 > self.outside {
            Some(false)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chord_limits_agree_with_haversine_whenever_they_answer() {
        let mut rng = crate::rng::SplitMix64::new(5);
        let point = |rng: &mut crate::rng::SplitMix64| {
            GeoPoint::new(rng.unit() * 180.0 - 90.0, rng.unit() * 360.0 - 180.0).unwrap()
        };
        let mut answered = 0;
        for i in 0..200_000 {
            let a = point(&mut rng);
            // Mostly nearby points (the usual case), some anywhere, a few almost antipodal.
            let b = match i % 4 {
                0 => point(&mut rng),
                3 if i % 100 == 3 => {
                    GeoPoint::new(-a.lat(), if a.lon() > 0.0 { a.lon() - 180.0 } else { a.lon() + 180.0 }).unwrap()
                }
                _ => GeoPoint::new(
                    (a.lat() + (rng.unit() - 0.5) * 10.0).clamp(-90.0, 90.0),
                    (a.lon() + (rng.unit() - 0.5) * 10.0).clamp(-180.0, 180.0),
                )
                .unwrap(),
            };
            let km = a.distance_km(b);
            let chord2 = SpherePoint::new(a).chord2(SpherePoint::new(b));
            // Limits at the distance itself, a hair either side, and elsewhere.
            let limits = [km, km * (1.0 + 1e-12), km * (1.0 - 1e-12), km + 1e-3, km - 1e-3, rng.unit() * 20_100.0, 0.0];
            for limit in limits {
                if let Some(within) = ChordLimit::new(limit).decide(chord2) {
                    answered += 1;
                    assert_eq!(within, km <= limit, "{a:?} {b:?}: {km} km against {limit}");
                }
            }
        }
        assert!(answered > 500_000, "the chords answer most comparisons ({answered})");
        assert_eq!(ChordLimit::new(f64::NAN).decide(0.0), Some(false));
        assert_eq!(ChordLimit::new(f64::INFINITY).decide(4.0), Some(true));
        assert_eq!(ChordLimit::new(-1.0).decide(0.0), Some(false));
    }

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
