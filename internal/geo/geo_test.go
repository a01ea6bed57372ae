package geo

import (
	"math"
	"strings"
	"testing"
)

var (
	brussels  = Point{50.85, 4.35}
	antwerp   = Point{51.22, 4.40}
	frankfurt = Point{50.11, 8.68}
	ghent     = Point{51.05, 3.72}
	liege     = Point{50.63, 5.57}
)

// near says whether got is within rel (a fraction) of want.
func near(got, want Distance, rel float64) bool {
	return math.Abs(float64(got-want)) <= rel*float64(want)
}

func TestBetween(t *testing.T) {
	tests := []struct {
		name string
		a, b Point
		want Distance // 0.5 % either way, except 0
	}{
		{"brussels-antwerp", brussels, antwerp, 41_400},
		{"antwerp-brussels", antwerp, brussels, 41_400},
		{"brussels-frankfurt", brussels, frankfurt, 316_000},
		{"same point", brussels, brussels, 0},
		{"antipodes", Point{10, 20}, Point{-10, -160}, Distance(math.Pi * EarthRadius)},
		{"pole to pole", Point{90, 0}, Point{-90, 0}, Distance(math.Pi * EarthRadius)},
		{"across the antimeridian", Point{0, 179.5}, Point{0, -179.5}, Distance(math.Pi * EarthRadius / 180)},
		{"one degree of latitude", Point{0, 0}, Point{1, 0}, 111_195},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Between(tt.a, tt.b)
			if tt.want == 0 && got != 0 || !near(got, tt.want, 0.005) {
				t.Errorf("Between(%v, %v) = %v (%f m), want %v", tt.a, tt.b, got, float64(got), tt.want)
			}
		})
	}
}

func TestParsePoint(t *testing.T) {
	tests := []struct {
		in      string
		want    Point
		wantErr string
	}{
		{"50.85,4.35", brussels, ""},
		{" 50.85 , 4.35 ", brussels, ""},
		{"-33.87,151.21", Point{-33.87, 151.21}, ""},
		{"90,-180", Point{90, -180}, ""},
		{"50.85 4.35", Point{}, "is not a place: write it as LATITUDE,LONGITUDE"},
		{"", Point{}, "is not a place"},
		{"50.85,", Point{}, "is not a place"},
		{"north,4.35", Point{}, "is not a place"},
		{"50.85,4.35,7", Point{}, "is not a place"},
		{"91,4.35", Point{}, "is not on the Earth"},
		{"50.85,180.5", Point{}, "is not on the Earth"},
		{"NaN,4", Point{}, "is not on the Earth"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePoint(tt.in)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("ParsePoint(%q): %v", tt.in, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("ParsePoint(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.wantErr)
			case got != tt.want:
				t.Errorf("ParsePoint(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	if p, _ := ParsePoint(brussels.String()); p != brussels {
		t.Errorf("String does not read back: %q gives %v", brussels.String(), p)
	}
}

func TestParseDistance(t *testing.T) {
	tests := []struct {
		in      string
		want    Distance
		wantErr string
	}{
		{"100km", 100_000, ""},
		{"60 km", 60_000, ""},
		{"100KM", 100_000, ""},
		{" 1.5 Km ", 1_500, ""},
		{"500m", 500, ""},
		{"500 M", 500, ""},
		{"30mi", 30 * 1609.344, ""},
		{"1 MI", 1609.344, ""},
		{"0km", 0, ""},
		{"0m", 0, ""},
		{"0", 0, ""},
		{"0.0", 0, ""},
		{"100", 0, "is not a distance: write it with its unit"},
		{"-5km", 0, "is negative"},
		{"abc km", 0, "is not a distance"},
		{"km", 0, "is not a distance"},
		{"", 0, "is not a distance"},
		{"5 miles", 0, "is not a distance"},
		{"NaN km", 0, "is not a distance"},
		{"Inf m", 0, "is not a distance"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDistance(tt.in)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("ParseDistance(%q): %v", tt.in, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("ParseDistance(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.wantErr)
			case math.Abs(float64(got-tt.want)) > 1e-9:
				t.Errorf("ParseDistance(%q) = %f m, want %f", tt.in, float64(got), float64(tt.want))
			}
		})
	}
}

func TestDistanceString(t *testing.T) {
	for d, want := range map[Distance]string{0: "0 m", 999.4: "999 m", 1000: "1 km", 1_549: "1.5 km", 41_400: "41 km", 316_049: "316 km"} {
		if got := d.String(); got != want {
			t.Errorf("Distance(%f).String() = %q, want %q", float64(d), got, want)
		}
	}
}

func TestCircleContains(t *testing.T) {
	d := Between(brussels, antwerp)
	tests := []struct {
		name string
		c    Circle
		p    Point
		want bool
	}{
		{"the centre", Circle{brussels, 0}, brussels, true},
		{"on the edge", Circle{brussels, d}, antwerp, true},
		{"a metre beyond the edge", Circle{brussels, d - 1}, antwerp, false},
		{"60 km around brussels takes antwerp", Circle{brussels, 60_000}, antwerp, true},
		{"60 km around brussels spares frankfurt", Circle{brussels, 60_000}, frankfurt, false},
		{"across the antimeridian", Circle{Point{0, 179.9}, 30_000}, Point{0, -179.9}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.Contains(tt.p); got != tt.want {
				t.Errorf("%v within %v of %v: %v, want %v (distance %v)", tt.p, tt.c.Radius, tt.c.Center, got, tt.want, Between(tt.c.Center, tt.p))
			}
		})
	}
}

func TestEnclosing(t *testing.T) {
	// A right angle at the origin: the circle is on the hypotenuse.
	right := []Point{{0, 0}, {0, 0.2}, {0.2, 0}}
	// An equilateral-ish triangle: the circle goes through all three.
	tri := []Point{{0, 0}, {0, 0.4}, {0.3464, 0.2}}
	tests := []struct {
		name   string
		points []Point
		centre Point    // within 0.5 km
		radius Distance // within 1 %
	}{
		{"none", nil, Point{}, 0},
		{"one", []Point{brussels}, brussels, 0},
		{"the same twice", []Point{brussels, brussels}, brussels, 0},
		{"two: halfway, half the distance", []Point{brussels, antwerp}, Point{51.035, 4.375}, Between(brussels, antwerp) / 2},
		{"three, one inside the others' circle", []Point{brussels, antwerp, {51.0, 4.37}}, Point{51.035, 4.375}, Between(brussels, antwerp) / 2},
		{"right triangle", right, Point{0.1, 0.1}, Between(Point{0, 0.2}, Point{0.2, 0}) / 2},
		{"equilateral triangle", tri, Point{0.1155, 0.2}, Between(Point{0, 0}, Point{0.1155, 0.2})},
		{"obtuse triangle: the longest side", []Point{{0, 0}, {0, 1}, {0.1, 0.5}}, Point{0, 0.5}, Between(Point{0, 0}, Point{0, 1}) / 2},
		{"collinear", []Point{{0, 0}, {0, 0.5}, {0, 1}}, Point{0, 0.5}, Between(Point{0, 0}, Point{0, 1}) / 2},
		{"across the antimeridian", []Point{{0, 179.9}, {0, -179.9}}, Point{0, 180}, Between(Point{0, 179.9}, Point{0, -179.9}) / 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Enclosing(tt.points)
			for _, p := range tt.points {
				if !c.Contains(p) {
					t.Errorf("%v (%v from the centre) is outside the circle %v, %v", p, Between(c.Center, p), c.Center, c.Radius)
				}
			}
			if d := Between(c.Center, tt.centre); d > 500 {
				t.Errorf("centre %v, want %v (%v away)", c.Center, tt.centre, d)
			}
			if tt.radius == 0 && c.Radius > 1e-6 || tt.radius > 0 && !near(c.Radius, tt.radius, 0.01) {
				t.Errorf("radius %v (%f m), want %v", c.Radius, float64(c.Radius), tt.radius)
			}
		})
	}
}

// bruteForce is the smallest over a fine grid of centres of the largest
// distance to the points: an upper bound of the enclosing radius, close
// to it on a fine grid.
func bruteForce(points []Point) Distance {
	var minLat, maxLat, minLon, maxLon = 90.0, -90.0, 180.0, -180.0
	for _, p := range points {
		minLat, maxLat = math.Min(minLat, p.Lat), math.Max(maxLat, p.Lat)
		minLon, maxLon = math.Min(minLon, p.Lon), math.Max(maxLon, p.Lon)
	}
	best := Distance(math.Inf(1))
	const n = 200
	for i := 0; i <= n; i++ {
		for j := 0; j <= n; j++ {
			c := Point{minLat + (maxLat-minLat)*float64(i)/n, minLon + (maxLon-minLon)*float64(j)/n}
			var r Distance
			for _, p := range points {
				r = max(r, Between(c, p))
			}
			best = min(best, r)
		}
	}
	return best
}

// Sets without a closed form: the circle holds every point and is within
// 1 % of the smallest a brute-force search over centres finds.
func TestEnclosingSearch(t *testing.T) {
	sets := [][]Point{{brussels, antwerp, ghent, liege, frankfurt}}
	seed := uint64(1)
	next := func() float64 { // a small LCG: the sets stay the same from run to run
		seed = seed*6364136223846793005 + 1442695040888963407
		return float64(seed>>11) / (1 << 53)
	}
	for n := 2; n <= 20; n += 3 {
		points := make([]Point, n)
		for i := range points {
			points[i] = Point{49.5 + 2*next(), 3 + 4*next()}
		}
		sets = append(sets, points)
	}
	for _, points := range sets {
		n := len(points)
		c := Enclosing(points)
		for _, p := range points {
			if !c.Contains(p) {
				t.Errorf("%d points: %v outside %v, %v", n, p, c.Center, c.Radius)
			}
		}
		if ref := bruteForce(points); c.Radius > ref*1.01 {
			t.Errorf("%d points: radius %v, over a brute-force search's %v by more than 1%%", n, c.Radius, ref)
		}
	}
}
