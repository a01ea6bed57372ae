// Package geo is the little geometry siteflip needs to reason about
// disasters: points on the Earth, great-circle distances, distances written
// with their unit, and circles (the area one disaster destroys). It is pure:
// no I/O, no clock.
package geo

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// EarthRadius is the mean radius of the Earth in metres (IUGG).
const EarthRadius = 6371008.8

// Point is a place on the Earth in decimal degrees (WGS 84).
type Point struct {
	Lat, Lon float64
}

// String writes p as LAT,LON, the form ParsePoint reads.
func (p Point) String() string {
	return strconv.FormatFloat(p.Lat, 'f', -1, 64) + "," + strconv.FormatFloat(p.Lon, 'f', -1, 64)
}

// Valid says whether p is a place on the Earth.
func (p Point) Valid() bool {
	return p.Lat >= -90 && p.Lat <= 90 && p.Lon >= -180 && p.Lon <= 180 && !math.IsNaN(p.Lat) && !math.IsNaN(p.Lon)
}

// ParsePoint reads "LAT,LON" in decimal degrees ("50.85,4.35").
func ParsePoint(s string) (Point, error) {
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return Point{}, fmt.Errorf("%q is not a place: write it as LATITUDE,LONGITUDE in decimal degrees, like 50.85,4.35", s)
	}
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
	lon, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
	if err1 != nil || err2 != nil {
		return Point{}, fmt.Errorf("%q is not a place: write it as LATITUDE,LONGITUDE in decimal degrees, like 50.85,4.35", s)
	}
	p := Point{lat, lon}
	if !p.Valid() {
		return Point{}, fmt.Errorf("%q is not on the Earth: latitude goes from -90 to 90 and longitude from -180 to 180", s)
	}
	return p, nil
}

// Distance is a length in metres.
type Distance float64

// Km is d in kilometres.
func (d Distance) Km() float64 { return float64(d) / 1000 }

// String writes d in kilometres, or in metres under one kilometre.
func (d Distance) String() string {
	if d < 1000 {
		return strconv.FormatFloat(math.Round(float64(d)), 'f', -1, 64) + " m"
	}
	km := d.Km()
	if km < 10 {
		return strconv.FormatFloat(math.Round(km*10)/10, 'f', -1, 64) + " km"
	}
	return strconv.FormatFloat(math.Round(km), 'f', -1, 64) + " km"
}

// ParseDistance reads a length with its unit: "100km", "60 km", "500m",
// "30mi".
func ParseDistance(s string) (Distance, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	units := []struct {
		suffix string
		metres float64
	}{{"km", 1000}, {"mi", 1609.344}, {"m", 1}}
	for _, u := range units {
		num, ok := strings.CutSuffix(t, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			break
		}
		if v < 0 {
			return 0, fmt.Errorf("%q is negative: a distance is 0 or more", s)
		}
		return Distance(v * u.metres), nil
	}
	return 0, fmt.Errorf("%q is not a distance: write it with its unit, like 100km, 500m or 30mi", s)
}

// Between is the great-circle distance from a to b (haversine formula on a
// sphere of EarthRadius; within 0.5 % of the ellipsoid).
func Between(a, b Point) Distance {
	φ1, φ2 := rad(a.Lat), rad(b.Lat)
	dφ, dλ := φ2-φ1, rad(b.Lon-a.Lon)
	h := math.Sin(dφ/2)*math.Sin(dφ/2) + math.Cos(φ1)*math.Cos(φ2)*math.Sin(dλ/2)*math.Sin(dλ/2)
	return Distance(2 * EarthRadius * math.Asin(math.Min(1, math.Sqrt(h))))
}

// Circle is the area within Radius of Center: what one disaster destroys.
type Circle struct {
	Center Point
	Radius Distance
}

// Contains says whether p lies in c (on its edge included).
func (c Circle) Contains(p Point) bool { return Between(c.Center, p) <= c.Radius }

func rad(deg float64) float64 { return deg * math.Pi / 180 }
