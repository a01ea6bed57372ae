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
// "30mi"; 0, the same in every unit, may go without.
func ParseDistance(s string) (Distance, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	if v, err := strconv.ParseFloat(t, 64); err == nil && v == 0 {
		return 0, nil
	}
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

// Enclosing is the smallest circle that contains every point: the smallest
// disaster that takes them all. It is meant for a handful of places (the
// sites of a group): it tries the circle on every pair as a diameter and
// the circle through every triple, on a flat projection around the points'
// centroid, which is within 1 % of the sphere at the scale of one region,
// and keeps the smallest that holds them all. Its radius is then measured
// on the sphere from the centre to the farthest point, so Contains holds
// for each. No points: the zero Circle.
func Enclosing(points []Point) Circle {
	if len(points) == 0 {
		return Circle{}
	}
	pr := newProjection(points)
	xy := make([]vec, len(points))
	for i, p := range points {
		xy[i] = pr.to(p)
	}
	best, found := vec{}, false
	bestR := math.Inf(1)
	try := func(c vec, r float64) {
		if r >= bestR {
			return
		}
		// A relative margin absorbs the rounding of points on the edge.
		limit := r*(1+1e-9) + 1e-6
		for _, q := range xy {
			if c.dist(q) > limit {
				return
			}
		}
		best, bestR, found = c, r, true
	}
	try(xy[0], 0)
	for i := range xy {
		for j := i + 1; j < len(xy); j++ {
			c := vec{(xy[i].x + xy[j].x) / 2, (xy[i].y + xy[j].y) / 2}
			try(c, c.dist(xy[i]))
			for k := j + 1; k < len(xy); k++ {
				if c, ok := circumcentre(xy[i], xy[j], xy[k]); ok {
					try(c, c.dist(xy[i]))
				}
			}
		}
	}
	if !found { // cannot happen: the widest pair's circle holds them all
		best = xy[0]
	}
	out := Circle{Center: pr.from(best)}
	for _, p := range points {
		out.Radius = max(out.Radius, Between(out.Center, p))
	}
	return out
}

// vec is a point on the flat projection, in metres.
type vec struct{ x, y float64 }

func (a vec) dist(b vec) float64 { return math.Hypot(a.x-b.x, a.y-b.y) }

// circumcentre is the centre of the circle through a, b and c; false when
// they are on one line.
func circumcentre(a, b, c vec) (vec, bool) {
	bx, by := b.x-a.x, b.y-a.y
	cx, cy := c.x-a.x, c.y-a.y
	d := 2 * (bx*cy - by*cx)
	if math.Abs(d) < 1e-9*(bx*bx+by*by+cx*cx+cy*cy) || d == 0 {
		return vec{}, false
	}
	b2, c2 := bx*bx+by*by, cx*cx+cy*cy
	return vec{a.x + (cy*b2-by*c2)/d, a.y + (bx*c2-cx*b2)/d}, true
}

// projection is the equirectangular projection around a centre: east and
// north of it in metres, longitudes taken the short way round (across the
// antimeridian too).
type projection struct {
	lat0, lon0, cos0 float64
}

func newProjection(points []Point) projection {
	// Longitudes are averaged as offsets from the first point, each taken
	// the short way round, so that 179.9 and -179.9 average to 180.
	var lat, dlon float64
	for _, p := range points {
		lat += p.Lat
		dlon += wrap(p.Lon - points[0].Lon)
	}
	n := float64(len(points))
	pr := projection{lat0: lat / n, lon0: wrap(points[0].Lon + dlon/n)}
	pr.cos0 = math.Cos(rad(pr.lat0))
	return pr
}

func (pr projection) to(p Point) vec {
	return vec{EarthRadius * rad(wrap(p.Lon-pr.lon0)) * pr.cos0, EarthRadius * rad(p.Lat-pr.lat0)}
}

func (pr projection) from(v vec) Point {
	lat := pr.lat0 + v.y/EarthRadius*180/math.Pi
	lon := pr.lon0
	if pr.cos0 > 1e-12 {
		lon = wrap(pr.lon0 + v.x/(EarthRadius*pr.cos0)*180/math.Pi)
	}
	return Point{Lat: math.Max(-90, math.Min(90, lat)), Lon: lon}
}

// wrap brings a longitude, or a difference of longitudes, into -180..180.
func wrap(deg float64) float64 {
	deg = math.Mod(deg+180, 360)
	if deg < 0 {
		deg += 360
	}
	return deg - 180
}
