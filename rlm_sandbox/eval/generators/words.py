"""Word lists the generators draw from (standard library only, so they ship as code)."""

from __future__ import annotations

ADJECTIVES = (
    "amber", "ancient", "bitter", "brave", "bright", "calm", "clever", "cold", "crimson", "curious", "damp",
    "dusty", "eager", "early", "faint", "fancy", "fierce", "fragile", "gentle", "gloomy", "golden", "grand",
    "hollow", "humble", "icy", "jolly", "keen", "lively", "lofty", "lucky", "mellow", "misty", "narrow",
    "noble", "odd", "pale", "plain", "proud", "quiet", "rapid", "rough", "rustic", "shy", "silent", "silver",
    "sleepy", "smooth", "solid", "spicy", "steady", "stormy", "sturdy", "subtle", "swift", "tame", "tidy",
    "vivid", "wary", "witty", "young",
)
NOUNS = (
    "anchor", "apple", "badger", "banner", "barrel", "basket", "beacon", "bottle", "bridge", "bucket", "candle",
    "canyon", "castle", "cellar", "comet", "compass", "cottage", "crayon", "desert", "dragon", "engine",
    "falcon", "feather", "forest", "garden", "glacier", "harbor", "helmet", "island", "jacket", "kettle",
    "ladder", "lantern", "meadow", "mirror", "monkey", "needle", "orchard", "otter", "paddle", "parrot",
    "pebble", "pillow", "planet", "pocket", "puzzle", "rabbit", "ribbon", "river", "rocket", "saddle",
    "shadow", "shovel", "spider", "statue", "teapot", "tunnel", "valley", "violin", "wagon", "window",
)
FIRST_NAMES = (
    "Ada", "Basil", "Cora", "Dmitri", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Leon",
    "Mara", "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Soren", "Talia", "Umar", "Vera", "Wade", "Xenia",
    "Yusuf", "Zora", "Anton", "Bianca", "Cyrus", "Dalia", "Emil", "Farah", "Gideon", "Hana", "Ivo", "Juno",
    "Kasper", "Lena", "Milo", "Noor", "Otto", "Petra", "Rafael", "Selma", "Tobias", "Ulla", "Viktor", "Wren",
)
LAST_NAMES = (
    "Abbot", "Brandt", "Calder", "Dorsey", "Ekberg", "Falk", "Garrow", "Holm", "Ilves", "Janssen", "Kestrel",
    "Lindqvist", "Marlow", "Nyberg", "Orsini", "Pryce", "Quell", "Rask", "Strand", "Thorne", "Ulrich", "Voss",
    "Whitlock", "Yardley", "Zeller", "Ashby", "Brenner", "Castell", "Dunmore", "Everly", "Fenwick", "Greaves",
    "Hartwell", "Ingram", "Jarvis", "Kessler", "Lowell", "Mercer", "Norland", "Oakes", "Penrose", "Radley",
)
DEPARTMENTS = ("Engineering", "Marketing", "Sales", "HR", "Finance", "Legal", "Support", "Research")
PERFORMANCE = ("Excellent", "Good", "Average", "Needs Improvement")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
