"""A realistic, deterministic demo org: Dutch and international leads and contacts, accounts, campaigns.

Content comes from a fixed random seed; timestamps are spread over the 90 days before ``now`` so
incremental syncs and ``updated/`` windows have something to find.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from .ids import make_id
from .schema import OBJECTS, SALES_USER_ID
from .values import format_datetime

SEED = 20240101
DEMO_POD = "Dm0"  # ids of demo records never collide with ids the emulator hands out

_DUTCH_FIRST = ["Sanne", "Daan", "Emma", "Lucas", "Julia", "Sem", "Tess", "Milan", "Lotte", "Bram", "Fleur", "Thijs",
                "Anouk", "Jesse", "Noor", "Ruben", "Eva", "Stijn", "Iris", "Joris", "Femke", "Pieter", "Maartje", "Koen"]
_DUTCH_LAST = ["de Vries", "Jansen", "van den Berg", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder",
               "de Groot", "Bos", "Vos", "Peters", "Hendriks", "van Leeuwen", "Dekker", "Brouwer", "de Wit",
               "Dijkstra", "van der Meer", "Kok", "Jacobs", "van Dijk", "Willems"]
_INTL_FIRST = ["Olivia", "James", "Sophie", "Mohammed", "Aisha", "Luca", "Chloé", "Mateo", "Yuki", "Priya", "Lars",
               "Zofia", "Hannah", "Oliver", "Fatima", "Noah", "Élodie", "Giulia", "Kenji", "Amara"]
_INTL_LAST = ["Smith", "Müller", "García", "Rossi", "Dubois", "Kowalski", "Nguyen", "Okafor", "Tanaka", "Singh",
              "Andersson", "O'Brien", "Schneider", "Fernández", "Yılmaz", "Novak", "Brown", "Lefèvre"]
_CITIES = [("Amsterdam", "1012 AB", "Netherlands"), ("Rotterdam", "3011 AD", "Netherlands"),
           ("Utrecht", "3511 LX", "Netherlands"), ("Den Haag", "2511 CV", "Netherlands"),
           ("Eindhoven", "5611 AZ", "Netherlands"), ("Groningen", "9711 LM", "Netherlands"),
           ("Antwerpen", "2000", "Belgium"), ("Berlin", "10115", "Germany"), ("London", "EC1A 1BB", "United Kingdom"),
           ("Paris", "75001", "France"), ("Madrid", "28013", "Spain"), ("New York", "10001", "United States")]
_STREETS = ["Keizersgracht", "Coolsingel", "Oudegracht", "Lange Voorhout", "Stratumseind", "Herestraat",
            "Meir", "Unter den Linden", "Baker Street", "Rue de Rivoli", "Gran Vía", "Fifth Avenue"]
_COMPANIES = ["Tulp Technologies", "Polder Logistics", "Grachtenhuis Media", "Molenaar & Zonen", "Noordzee Energy",
              "Rijnmond Retail", "Delfts Blauw Design", "Utrechtse Zorggroep", "Brabant Bouw", "Friesland Foods",
              "Acme Corporation", "Globex", "Initech", "Umbrella Health", "Stark Industries", "Wayne Enterprises",
              "Hooli", "Vandelay Industries", "Soylent Foods", "Cyberdyne Systems"]
_TITLES = ["Marketing Manager", "CEO", "Sales Director", "Office Manager", "CTO", "Inkoper", "Directeur",
           "Marketeer", "Consultant", "Head of CRM", None]
_DOMAINS = ["example.nl", "example.com", "mail.example.org", "voorbeeld.nl"]


def _email_local(first: str, last: str) -> str:
    text = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
    return text.translate(str.maketrans("éèçüöıłá", "eecuoila"))


def build_demo_data(now: datetime | None = None) -> dict[str, list[dict]]:
    """The demo records per object, with fixed ids, in an order that can be loaded front to back."""
    rng = random.Random(SEED)
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    counters: dict[str, int] = {}

    def new_id(sobject: str) -> str:
        counters[sobject] = counters.get(sobject, 0) + 1
        return make_id(OBJECTS[sobject].key_prefix, counters[sobject], pod=DEMO_POD)

    def stamps() -> dict:
        created = now - timedelta(days=rng.uniform(1, 90))
        modified = created + (now - created) * rng.random()
        return {"CreatedDate": format_datetime(created), "LastModifiedDate": format_datetime(modified),
                "SystemModstamp": format_datetime(modified)}

    def person() -> tuple[str, str]:
        if rng.random() < 0.65:
            return rng.choice(_DUTCH_FIRST), rng.choice(_DUTCH_LAST)
        return rng.choice(_INTL_FIRST), rng.choice(_INTL_LAST)

    used_emails: set[str] = set()

    def email(first: str, last: str) -> str:
        base = _email_local(first, last)
        candidate, n = f"{base}@{rng.choice(_DOMAINS)}", 1
        while candidate in used_emails:
            n += 1
            candidate = f"{base}{n}@{rng.choice(_DOMAINS)}"
        used_emails.add(candidate)
        return candidate

    def flags() -> dict:
        return {"Sync_to_Deployteq__c": rng.random() < 0.3, "SyncWithClang__c": rng.random() < 0.25,
                "Email_Opt_In__c": rng.choice(["Y", "Y", "N", None]), "Newsletter__c": rng.random() < 0.4,
                "HasOptedOutOfEmail": rng.random() < 0.05}

    accounts = []
    for company in _COMPANIES * 2:
        city, _postal, country = rng.choice(_CITIES)
        name = company if len(accounts) < len(_COMPANIES) else f"{company} {city}"
        accounts.append({"Id": new_id("Account"), "Name": name, "Industry": rng.choice(OBJECTS["Lead"].fields["Industry"].picklist),
                         "Type": rng.choice(["Prospect", "Customer - Direct", "Partner"]), "BillingCity": city,
                         "BillingCountry": country, "AnnualRevenue": float(rng.randrange(100, 50000) * 1000),
                         "NumberOfEmployees": rng.randrange(2, 5000), "SyncWithClang__c": rng.random() < 0.3,
                         "Website": f"https://www.{name.split()[0].lower()}.example.com", **stamps()})

    contacts = []
    for _ in range(220):
        first, last = person()
        city, postal, country = rng.choice(_CITIES)
        contacts.append({
            "Id": new_id("Contact"), "FirstName": first, "LastName": last, "Salutation": rng.choice(["Mr.", "Ms.", None]),
            "Email": email(first, last), "Phone": f"+31 20 {rng.randrange(1000000, 9999999)}",
            "MobilePhone": f"+31 6 {rng.randrange(10000000, 99999999)}", "Title": rng.choice(_TITLES),
            "AccountId": rng.choice(accounts)["Id"], "MailingStreet": f"{rng.choice(_STREETS)} {rng.randrange(1, 300)}",
            "MailingPostalCode": postal, "MailingCity": city, "MailingCountry": country,
            "Birthdate": f"{rng.randrange(1950, 2003)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
            "LeadSource": rng.choice(["Web", "Phone Inquiry", "Partner Referral", None]), **flags(), **stamps()})

    leads = []
    for index in range(320):
        first, last = person()
        city, postal, country = rng.choice(_CITIES)
        lead = {
            "Id": new_id("Lead"), "FirstName": first, "LastName": last, "Salutation": rng.choice(["Mr.", "Ms.", "Dr.", None]),
            "Company": rng.choice(_COMPANIES), "Title": rng.choice(_TITLES), "Email": email(first, last),
            "Phone": f"+31 10 {rng.randrange(1000000, 9999999)}", "Street": f"{rng.choice(_STREETS)} {rng.randrange(1, 300)}",
            "PostalCode": postal, "City": city, "Country": country,
            "Status": rng.choice(["Open - Not Contacted", "Working - Contacted", "Closed - Not Converted"]),
            "LeadSource": rng.choice(["Web", "Purchased List", "Other", None]),
            "Industry": rng.choice(OBJECTS["Lead"].fields["Industry"].picklist),
            "AnnualRevenue": float(rng.randrange(50, 20000) * 1000) if rng.random() < 0.6 else None,
            "NumberOfEmployees": rng.randrange(1, 2000) if rng.random() < 0.6 else None, **flags(), **stamps()}
        if index < 20:  # converted: the contact carries the lead's person data
            contact = contacts[index]
            lead.update(FirstName=contact["FirstName"], LastName=contact["LastName"], Email=contact["Email"],
                        IsConverted=True, Status="Closed - Converted", ConvertedContactId=contact["Id"],
                        ConvertedAccountId=contact["AccountId"], ConvertedDate=lead["LastModifiedDate"][:10])
        elif index < 40:  # the same person known as a lead and as a contact (shared e-mail address)
            contact = contacts[index + 20]
            lead.update(FirstName=contact["FirstName"], LastName=contact["LastName"], Email=contact["Email"])
        leads.append(lead)

    campaigns = []
    for name, kind, status, active in (("Nieuwsbrief januari", "Email", "Completed", False),
                                       ("Voorjaarsactie", "Email", "In Progress", True),
                                       ("Webinar Marketing Automation", "Webinar", "In Progress", True),
                                       ("Beurs Jaarbeurs Utrecht", "Conference", "Planned", False),
                                       ("Product launch EMEA", "Advertisement", "In Progress", True),
                                       ("Klantendag", "Other", "Planned", False)):
        start = (now - timedelta(days=rng.randrange(0, 60))).date()
        campaigns.append({"Id": new_id("Campaign"), "Name": name, "Type": kind, "Status": status, "IsActive": active,
                          "StartDate": start.isoformat(), "EndDate": (start + timedelta(days=30)).isoformat(),
                          "SyncWithClang__c": rng.random() < 0.5, **stamps()})

    members, seen = [], set()
    for _ in range(220):
        campaign = rng.choice(campaigns)
        if rng.random() < 0.5:
            target = rng.choice(leads)
            key, link = (campaign["Id"], target["Id"]), {"LeadId": target["Id"]}
        else:
            target = rng.choice(contacts)
            key, link = (campaign["Id"], target["Id"]), {"ContactId": target["Id"]}
        if key in seen:
            continue
        seen.add(key)
        responded = rng.random() < 0.3
        members.append({"Id": new_id("CampaignMember"), "CampaignId": campaign["Id"], **link,
                        "Status": "Responded" if responded else "Sent", "SyncWithClang__c": rng.random() < 0.5,
                        **stamps()})

    def moments(sobject: str, parent_field: str, parents: list[dict], count: int) -> list[dict]:
        rows = []
        for n in range(count):
            sent = now - timedelta(days=rng.uniform(1, 30))
            opened, clicked, bounced = rng.random() < 0.5, rng.random() < 0.2, rng.random() < 0.05
            rows.append({
                "Id": new_id(sobject), "Name": f"Mailing {n + 1}", parent_field: rng.choice(parents)["Id"],
                "Deployteq_Id__c": f"DT-{sobject[5]}-{100000 + n}", "Mailing_Name__c": rng.choice(
                    ["Nieuwsbrief", "Welkom", "Voorjaarsactie", "Webinar uitnodiging"]),
                "Subject__c": rng.choice(["Uw maandelijkse update", "Welkom bij ons!", "Laatste kans: 20% korting"]),
                "Sent_Date__c": format_datetime(sent), "Opened__c": opened,
                "First_Opened_Date__c": format_datetime(sent + timedelta(hours=2)) if opened else None,
                "Open_Count__c": float(rng.randrange(1, 6)) if opened else 0.0, "Clicked__c": clicked,
                "First_Clicked_Date__c": format_datetime(sent + timedelta(hours=3)) if clicked else None,
                "Click_Count__c": float(rng.randrange(1, 4)) if clicked else 0.0, "Bounced__c": bounced,
                "Bounce_Date__c": format_datetime(sent) if bounced else None,
                "Bounce_Type__c": rng.choice(["hard", "soft"]) if bounced else None,
                "Online_Version_URL__c": f"https://mail.example.com/online/{100000 + n}",
                "CreatedDate": format_datetime(sent), "SystemModstamp": format_datetime(sent)})
        return rows

    return {
        "Account": accounts,
        "Contact": contacts,
        "Lead": leads,
        "Campaign": campaigns,
        "CampaignMember": members,
        "ClangLeadContactMoment__c": moments("ClangLeadContactMoment__c", "Lead__c", leads, 60),
        "ClangContactContactMoment__c": moments("ClangContactContactMoment__c", "Contact__c", contacts, 60),
    }


def seed_demo(emulator) -> dict[str, int]:
    """Replace all records of ``emulator`` by the demo data; returns the count per object."""
    from .store import Txn

    store = emulator.store
    emulator.db.clear_records()
    store.wipe()
    emulator.queries.clear()
    data = build_demo_data(datetime.fromtimestamp(int(emulator.clock.now()), tz=timezone.utc))
    txn = Txn(store, SALES_USER_ID)
    for sobject, records in data.items():
        sdef = OBJECTS[sobject]
        for record in records:
            store.seed_record(txn, sdef, record)
    txn.commit()
    return {sobject: len(records) for sobject, records in data.items()}
