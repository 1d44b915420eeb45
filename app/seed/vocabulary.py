"""The words the seed draws from, with how often each is drawn: locales (names, cities,
companies and phone numbers come from Faker per locale), tags, funnels, groups, sales reps,
mailings, products, events and details. Weights are relative, not percentages."""

from typing import NamedTuple

# Times are Unix seconds.
DAY = 86_400
YEAR = 365 * DAY


class LocaleSpec(NamedTuple):
    locale: str  # Faker's
    weight: int
    country: str
    tld: str  # of company web domains
    mail_domains: tuple[tuple[str, int], ...]  # free mail providers, with weights


LOCALES = (
    LocaleSpec(
        "pl_PL",
        34,
        "PL",
        "pl",
        (
            ("gmail.com", 30),
            ("wp.pl", 22),
            ("onet.pl", 16),
            ("o2.pl", 10),
            ("interia.pl", 10),
            ("outlook.com", 6),
            ("icloud.com", 4),
            ("yahoo.com", 2),
        ),
    ),
    LocaleSpec(
        "en_US",
        20,
        "US",
        "com",
        (
            ("gmail.com", 45),
            ("yahoo.com", 15),
            ("icloud.com", 12),
            ("outlook.com", 12),
            ("hotmail.com", 10),
            ("aol.com", 6),
        ),
    ),
    LocaleSpec(
        "de_DE",
        15,
        "DE",
        "de",
        (
            ("gmx.de", 25),
            ("gmail.com", 25),
            ("web.de", 22),
            ("t-online.de", 12),
            ("outlook.de", 8),
            ("yahoo.de", 8),
        ),
    ),
    LocaleSpec(
        "en_GB",
        12,
        "GB",
        "co.uk",
        (
            ("gmail.com", 40),
            ("hotmail.co.uk", 15),
            ("outlook.com", 12),
            ("yahoo.co.uk", 12),
            ("btinternet.com", 11),
            ("icloud.com", 10),
        ),
    ),
    LocaleSpec(
        "fr_FR",
        10,
        "FR",
        "fr",
        (
            ("gmail.com", 35),
            ("orange.fr", 20),
            ("free.fr", 14),
            ("hotmail.fr", 12),
            ("laposte.net", 10),
            ("sfr.fr", 9),
        ),
    ),
    LocaleSpec(
        "es_ES",
        5,
        "ES",
        "es",
        (
            ("gmail.com", 50),
            ("hotmail.es", 20),
            ("yahoo.es", 10),
            ("outlook.es", 10),
            ("telefonica.net", 10),
        ),
    ),
    LocaleSpec(
        "it_IT",
        4,
        "IT",
        "it",
        (
            ("gmail.com", 45),
            ("libero.it", 20),
            ("hotmail.it", 12),
            ("virgilio.it", 10),
            ("alice.it", 8),
            ("tiscali.it", 5),
        ),
    ),
)

# Most common first: tag k is picked with weight 1 / k**1.15 (a Zipf-like long tail).
TAGS = (
    "newsletter",
    "lead-magnet",
    "black-friday",
    "webinar",
    "facebook-ads",
    "ebook-download",
    "google-ads",
    "abandoned-cart",
    "VIP",
    "trial",
    "instagram",
    "summer-sale",
    "referral",
    "organic",
    "cyber-monday",
    "b2c",
    "b2b",
    "christmas-2025",
    "coupon-user",
    "mobile-app",
    "loyalty-bronze",
    "event-attendee",
    "linkedin",
    "survey-responder",
    "churn-risk",
    "high-value",
    "loyalty-silver",
    "demo-requested",
    "inactive-90d",
    "tiktok",
    "reactivated",
    "nps-promoter",
    "wholesale",
    "podcast",
    "loyalty-gold",
    "beta-tester",
    "partner-lead",
    "nps-detractor",
    "influencer",
    "Press",
)
TAGS_PER_CONTACT = (24, 26, 20, 13, 9, 5, 3)  # weights for 0..6 tags

SEXES = (("female", 47.5), ("male", 47.5), ("unknown", 5))
STATES = (("PROSPECT", 68), ("CUSTOMER", 22), ("UNKNOWN", 4), ("PARTNER", 3), ("OTHER", 3))

# name, stages, weights of the stages. The generator knows them in this order: Sales (where
# a customer most often has Won), then Onboarding.
FUNNELS = (
    ("Sales", ("Lead", "Qualified", "Offer", "Negotiation", "Won", "Lost"), (40, 22, 14, 8, 10, 6)),
    ("Onboarding", ("Signed up", "Activated", "Engaged", "Churned"), (30, 30, 25, 15)),
)

# In this order too: Blacklist (more of the invalid addresses), Partners (mostly partners).
GROUPS = ("Blacklist", "Partners", "Webinar 2026")

# Sales reps owning contacts, with how much of the book each one has.
USERS = (
    ("anna.kowalska@audience-demo.example", 30),
    ("tom.baker@audience-demo.example", 22),
    ("julia.schmidt@audience-demo.example", 16),
    ("pierre.martin@audience-demo.example", 12),
    ("piotr.nowak@audience-demo.example", 10),
    ("emma.wilson@audience-demo.example", 6),
    ("lucia.garcia@audience-demo.example", 4),
)

# One mailing a month over the last year, named for its month (January first).
MAILINGS = (
    "New year, new plan",
    "Valentine's Day gift ideas",
    "Spring collection preview",
    "Easter deals",
    "Newsletter: May",
    "Summer sale -30%",
    "Newsletter: July",
    "Back to school",
    "Webinar invitation",
    "Newsletter: October",
    "Black Friday early access",
    "Christmas gift guide",
)

PRODUCTS = (
    "running shoes",
    "yoga mat",
    "water bottle",
    "fitness tracker",
    "wireless earbuds",
    "rain jacket",
    "hiking backpack",
    "trail socks",
    "coffee grinder",
    "french press",
    "espresso beans",
    "ceramic mug",
    "linen shirt",
    "denim jacket",
    "wool scarf",
    "leather wallet",
    "sunglasses",
    "phone case",
    "usb-c charger",
    "laptop sleeve",
    "desk lamp",
    "notebook a5",
    "fountain pen",
    "scented candle",
    "bath towel",
    "bed linen set",
    "cast iron pan",
    "chef knife",
    "cutting board",
    "tea sampler",
    "protein bar box",
    "vitamin d3",
    "face cream",
    "shampoo 500ml",
    "gift card 50",
    "gift card 100",
    "kids sneakers",
    "board game",
    "puzzle 1000",
    "smart plug",
)

EVENT_TYPES = (("VISIT", 45), ("PURCHASE", 20), ("CART", 20), ("OTHER", 10), ("CANCELLATION", 5))

CURRENCIES = ("PLN", "EUR", "USD", "GBP")
# What an event's details may be, by event type.
EVENT_DETAILS: dict[str, list[dict[str, str]]] = {
    "PURCHASE": [
        {"channel": c, "currency": cur, "payment": p}
        for c in ("web", "app", "store")
        for cur in CURRENCIES
        for p in ("card", "paypal", "blik", "transfer", "cash")
    ],
    "CART": [{"channel": c, "currency": cur} for c in ("web", "app") for cur in CURRENCIES],
    "VISIT": [
        {"page": p, "utm_source": s}
        for p in ("/", "/pricing", "/blog", "/product", "/contact", "/sale")
        for s in ("newsletter", "google", "facebook", "direct", "instagram")
    ]
    + [{"page": p} for p in ("/", "/pricing", "/checkout")],
    "CANCELLATION": [
        {"reason": r}
        for r in ("too expensive", "changed mind", "late delivery", "wrong size", "other")
    ],
    "OTHER": [
        {"kind": k}
        for k in ("support-ticket", "review", "newsletter-signup", "app-install", "call")
    ],
}

# Contact details: the plan, and where the contact came from.
PLANS = (("free", 60), ("pro", 30), ("enterprise", 10))
SOURCES = (
    "web",
    "facebook",
    "google",
    "referral",
    "import",
    "pos",
    "event",
    "api",
    "landing-page",
    "instagram",
)
# Real data is untidy: a few numeric and date details do not parse.
ODD_NUMBERS = ("n/a", "1 200", "12,5k", "-", "unknown", "TBD")
ODD_DATES = ("31/12/2024", "unknown", "2024-02-30", "yesterday", "0000-00-00", "03.11.2025")

# For e-mail addresses and web domains: letters Unicode's decomposition leaves alone.
TRANSLITERATION = str.maketrans(
    {
        "ł": "l",
        "Ł": "L",
        "ß": "ss",
        "ø": "o",
        "Ø": "O",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "đ": "d",
        "Đ": "D",
        "ı": "i",
    }
)
# Words of a company's name that its web domain leaves out (legal forms, "and", "the").
LEGAL_FORMS = {
    "sp",
    "z",
    "o",
    "oo",
    "sa",
    "sc",
    "sk",
    "spk",
    "gmbh",
    "ag",
    "kg",
    "co",
    "kgaa",
    "ohg",
    "mbh",
    "ltd",
    "plc",
    "llc",
    "inc",
    "and",
    "und",
    "et",
    "e",
    "y",
    "sarl",
    "sas",
    "snc",
    "srl",
    "spa",
    "sl",
    "scoop",
    "s",
    "c",
    "figli",
    "group",
    "grupa",
    "fils",
    "the",
    "gbr",
    "ug",
    "eg",
    "ev",
    "sapa",
    "sca",
    "ssp",
}
