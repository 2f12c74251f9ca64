"""The emulated org's objects and fields, and the describe JSON built from them.

Field types are Salesforce's describe types (id, string, email, boolean, datetime, date, double,
int, currency, percent, picklist, reference, phone, url, textarea).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

API_USER_ID = "0058d0000000001AAA"  # the integration user behind the session id
SALES_USER_ID = "0058d0000000002AAA"  # the "human" user behind admin edits and seeded data
# The emulated org's metadata is fixed in code: it last "changed" with the Winter '24 (v59.0) release.
# Describe answers 304 to an If-Modified-Since at or after it.
METADATA_LAST_MODIFIED = "2023-10-14T00:00:00.000+0000"

_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "datetime": "xsd:dateTime",
    "date": "xsd:date",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
}
_TEXT_TYPES = {"string", "email", "phone", "url", "textarea", "picklist", "id", "reference"}


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str
    label: str = ""
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    default: Any = None  # value given on create when the field is not sent
    picklist: tuple[str, ...] = ()
    restricted: bool = False  # restricted picklist: other values are rejected
    reference_to: str | None = None
    relationship_name: str | None = None
    child_relationship: str | None = None  # the parent's name for its children through this field ("Contacts")
    external_id: bool = False
    unique: bool = False
    calculated: bool = False
    required: bool = False  # enforced on create/update (REQUIRED_FIELD_MISSING)
    custom: bool = False

    @property
    def writable_on_create(self) -> bool:
        return self.createable

    @cached_property
    def display_label(self) -> str:
        """The describe label, which error messages quote (cached: the definition never changes)."""
        return self.label or _label(self.name)

    def describe(self) -> dict:
        is_text = self.type in _TEXT_TYPES
        length = self.length if self.type not in ("id", "reference") else 18
        return {
            "aggregatable": self.type != "textarea",
            "autoNumber": False,
            "byteLength": length * 3 if is_text else 0,
            "calculated": self.calculated,
            "calculatedFormula": None,
            "cascadeDelete": False,
            "caseSensitive": False,
            "compoundFieldName": "Name" if self.name in _NAME_PART_FIELDS else None,
            "controllerName": None,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": self.default if self.type == "boolean" else None,
            "defaultValueFormula": None,
            "defaultedOnCreate": self.default is not None or self.name in _DEFAULTED_SYSTEM_FIELDS,
            "dependentPicklist": False,
            "deprecatedAndHidden": False,
            "digits": 9 if self.type == "int" else 0,
            "externalId": self.external_id,
            "filterable": True,
            "groupable": self.type not in ("double", "currency", "percent", "textarea", "datetime"),
            "htmlFormatted": False,
            "idLookup": self.name == "Id" or self.external_id or self.name == "Email",
            "inlineHelpText": None,
            "label": self.display_label,
            "length": length if is_text else 0,
            "name": self.name,
            "nameField": self.name == "Name",
            "nillable": self.nillable and not self.required and self.type != "boolean",
            "picklistValues": [
                {"active": True, "defaultValue": value == self.default, "label": value, "validFor": None, "value": value}
                for value in self.picklist
            ],
            "polymorphicForeignKey": False,
            "precision": 18 if self.type in ("double", "currency", "percent") else 0,
            "referenceTo": [self.reference_to] if self.reference_to else [],
            "relationshipName": self.relationship_name,
            "restrictedPicklist": self.restricted,
            "scale": 2 if self.type in ("currency", "percent") else 0,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "sortable": self.type != "textarea",
            "type": self.type,
            "unique": self.unique,
            "updateable": self.updateable,
        }


# Lead/Contact/User: the parts of the compound Name field (describe names the compound on each part)
_NAME_PART_FIELDS = {"Salutation", "FirstName", "LastName"}
_DEFAULTED_SYSTEM_FIELDS = {
    "Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
    "SystemModstamp", "OwnerId", "Name",
}


def _label(name: str) -> str:
    base = name[:-3] if name.endswith("__c") else name
    if base.endswith("Id") and len(base) > 2:
        base = base[:-2] + " ID"
    words, current = [], ""
    for char in base.replace("_", " "):
        if char.isupper() and current and not current[-1].isupper() and current[-1] != " ":
            words.append(current)
            current = char
        else:
            current += char
    words.append(current)
    return " ".join(word.strip() for word in words if word.strip())


@dataclass
class SObjectDef:
    name: str
    key_prefix: str
    label: str
    label_plural: str
    fields: dict[str, FieldDef] = field(default_factory=dict)
    custom: bool = False
    # Unique constraints besides external ids: (fields, message); None-valued keys are not checked.
    unique_together: tuple[tuple[tuple[str, ...], str], ...] = ()
    createable: bool = True

    def __post_init__(self) -> None:
        self.fields_lower = {name.lower(): f for name, f in self.fields.items()}
        self.relationships = {
            f.relationship_name.lower(): (f.name, f.reference_to)
            for f in self.fields.values()
            if f.relationship_name and f.reference_to
        }
        self.required_fields = [f.name for f in self.fields.values() if f.required]
        self.external_ids = [f.name for f in self.fields.values() if f.external_id]
        self.defaults = {f.name: f.default for f in self.fields.values() if f.default is not None}
        self.field_names = list(self.fields)
        # the fields an API create / update may not set, for the per-record checks of bulk writes
        self.not_createable = frozenset(f.name for f in self.fields.values() if not f.createable)
        self.not_updateable = frozenset(f.name for f in self.fields.values() if not f.updateable)

    def describe(self, api_version: str) -> dict:
        base = f"/services/data/v{api_version}/sobjects/{self.name}"
        child_relationships = [
            {
                "cascadeDelete": False,
                "childSObject": child.name,
                "deprecatedAndHidden": False,
                "field": f.name,
                "relationshipName": f.child_relationship,
            }
            for child in OBJECTS.values()
            for f in child.fields.values()
            if f.reference_to == self.name and f.name not in ("CreatedById", "LastModifiedById", "OwnerId")
        ]
        return {
            **self.summary(api_version),
            "childRelationships": child_relationships,
            "fields": [f.describe() for f in self.fields.values()],
            "recordTypeInfos": [],
            "supportedScopes": [{"label": "All", "name": "everything"}],
            "urls": {
                "sobject": base,
                "describe": f"{base}/describe",
                "rowTemplate": f"{base}/{{ID}}",
                "uiDetailTemplate": None,
            },
        }

    def summary(self, api_version: str) -> dict:
        base = f"/services/data/v{api_version}/sobjects/{self.name}"
        writable = self.createable
        return {
            "activateable": False,
            "createable": writable,
            "custom": self.custom,
            "customSetting": False,
            "deletable": writable,
            "deprecatedAndHidden": False,
            "feedEnabled": False,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": True,
            "mergeable": self.name in ("Lead", "Contact", "Account"),
            "mruEnabled": True,
            "name": self.name,
            "queryable": True,
            "replicateable": True,
            "retrieveable": True,
            "searchable": True,
            "triggerable": True,
            "undeletable": writable,
            "updateable": writable,
            "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"},
        }


# --- field helpers -------------------------------------------------------------------------

def _text(name, length=255, **kw):
    return FieldDef(name, "string", length=length, **kw)


def _bool(name, default=False, **kw):
    return FieldDef(name, "boolean", nillable=False, default=default, **kw)


def _ref(name, target, relationship, **kw):
    return FieldDef(name, "reference", reference_to=target, relationship_name=relationship, **kw)


def _pick(name, values, default=None, **kw):
    return FieldDef(name, "picklist", length=255, picklist=tuple(values), default=default, **kw)


def _system_fields(with_owner: bool = True) -> list[FieldDef]:
    fixed = dict(createable=False, updateable=False)
    fields = [
        FieldDef("Id", "id", label="Record ID", length=18, nillable=False, **fixed),
        _bool("IsDeleted", label="Deleted", **fixed),
        FieldDef("CreatedDate", "datetime", nillable=False, **fixed),
        _ref("CreatedById", "User", "CreatedBy", nillable=False, **fixed),
        FieldDef("LastModifiedDate", "datetime", nillable=False, **fixed),
        _ref("LastModifiedById", "User", "LastModifiedBy", nillable=False, **fixed),
        FieldDef("SystemModstamp", "datetime", nillable=False, **fixed),
    ]
    if with_owner:
        fields.append(_ref("OwnerId", "User", "Owner", nillable=False))
    return fields


def _object(name, prefix, label, plural, fields, custom=False, with_owner=True, **kw) -> SObjectDef:
    all_fields = _system_fields(with_owner) + fields
    return SObjectDef(name, prefix, label, plural, {f.name: f for f in all_fields}, custom=custom, **kw)


_SALUTATIONS = ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")
_LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
_INDUSTRIES = (
    "Agriculture", "Banking", "Consulting", "Education", "Energy", "Finance", "Government",
    "Healthcare", "Hospitality", "Manufacturing", "Media", "Retail", "Technology", "Transportation",
)
_LEAD_STATUSES = ("Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted")
_NAME_PARTS = lambda: [  # noqa: E731  (a fresh list per object)
    FieldDef("FirstName", "string", length=40),
    FieldDef("LastName", "string", length=80, required=True),
    FieldDef("Name", "string", label="Full Name", length=121, createable=False, updateable=False,
             calculated=False),
    _pick("Salutation", _SALUTATIONS),
]
_SYNC_FIELDS = lambda: [  # noqa: E731
    _bool("Sync_to_Deployteq__c", label="Sync to Deployteq", custom=True),
    _bool("SyncWithClang__c", label="Sync with Clang", custom=True),
    _pick("Email_Opt_In__c", ("Y", "N"), label="E-mail opt-in", custom=True),
    _bool("Newsletter__c", label="Newsletter", custom=True),
]

USER = _object(
    "User", "005", "User", "Users",
    [
        FieldDef("Username", "string", length=80, required=True),
        FieldDef("FirstName", "string", length=40),
        FieldDef("LastName", "string", length=80, required=True),
        FieldDef("Name", "string", label="Full Name", length=121, createable=False, updateable=False),
        FieldDef("Email", "email", length=80, required=True),
        _bool("IsActive", default=True, label="Active"),
    ],
    with_owner=False,
    createable=False,
)

LEAD = _object(
    "Lead", "00Q", "Lead", "Leads",
    [
        *_NAME_PARTS(),
        FieldDef("Company", "string", length=255, required=True),
        FieldDef("Title", "string", length=128),
        FieldDef("Email", "email", length=80),
        FieldDef("Phone", "phone", length=40),
        FieldDef("MobilePhone", "phone", length=40),
        FieldDef("Street", "textarea", length=255),
        FieldDef("PostalCode", "string", length=20, label="Zip/Postal Code"),
        FieldDef("City", "string", length=40),
        FieldDef("Country", "string", length=80),
        _pick("Status", _LEAD_STATUSES, default="Open - Not Contacted", nillable=False),
        _pick("LeadSource", _LEAD_SOURCES),
        _pick("Industry", _INDUSTRIES),
        FieldDef("AnnualRevenue", "currency"),
        FieldDef("NumberOfEmployees", "int", label="Employees"),
        _bool("HasOptedOutOfEmail", label="Email Opt Out"),
        _bool("IsConverted", label="Converted", createable=False, updateable=False),
        _ref("ConvertedContactId", "Contact", "ConvertedContact", createable=False, updateable=False),
        _ref("ConvertedAccountId", "Account", "ConvertedAccount", createable=False, updateable=False),
        FieldDef("ConvertedDate", "date", createable=False, updateable=False),
        _ref("MasterRecordId", "Lead", "MasterRecord", createable=False, updateable=False),
        *_SYNC_FIELDS(),
    ],
)

ACCOUNT = _object(
    "Account", "001", "Account", "Accounts",
    [
        FieldDef("Name", "string", label="Account Name", length=255, required=True),
        _pick("Industry", _INDUSTRIES),
        _pick("Type", ("Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other")),
        FieldDef("BillingCity", "string", length=40),
        FieldDef("BillingCountry", "string", length=80),
        FieldDef("AnnualRevenue", "currency"),
        FieldDef("NumberOfEmployees", "int", label="Employees"),
        FieldDef("Website", "url", length=255),
        _ref("MasterRecordId", "Account", "MasterRecord", createable=False, updateable=False),
        _bool("SyncWithClang__c", label="Sync with Clang", custom=True),
    ],
)

CONTACT = _object(
    "Contact", "003", "Contact", "Contacts",
    [
        *_NAME_PARTS(),
        FieldDef("Email", "email", length=80),
        FieldDef("Phone", "phone", length=40),
        FieldDef("MobilePhone", "phone", length=40),
        FieldDef("Title", "string", length=128),
        _ref("AccountId", "Account", "Account", child_relationship="Contacts"),
        FieldDef("MailingStreet", "textarea", length=255),
        FieldDef("MailingPostalCode", "string", length=20),
        FieldDef("MailingCity", "string", length=40),
        FieldDef("MailingCountry", "string", length=80),
        FieldDef("Birthdate", "date"),
        _pick("LeadSource", _LEAD_SOURCES),
        _bool("HasOptedOutOfEmail", label="Email Opt Out"),
        _ref("MasterRecordId", "Contact", "MasterRecord", createable=False, updateable=False),
        *_SYNC_FIELDS(),
    ],
)

CAMPAIGN = _object(
    "Campaign", "701", "Campaign", "Campaigns",
    [
        FieldDef("Name", "string", label="Campaign Name", length=80, required=True),
        _pick("Type", ("Email", "Webinar", "Conference", "Advertisement", "Direct Mail", "Other")),
        _pick("Status", ("Planned", "In Progress", "Completed", "Aborted"), default="Planned"),
        FieldDef("StartDate", "date"),
        FieldDef("EndDate", "date"),
        _bool("IsActive", label="Active"),
        _bool("SyncWithClang__c", label="Sync with Clang", custom=True),
    ],
)

CAMPAIGN_MEMBER = _object(
    "CampaignMember", "00v", "Campaign Member", "Campaign Members",
    [
        _ref("CampaignId", "Campaign", "Campaign", required=True, updateable=False,
             child_relationship="CampaignMembers"),
        _ref("LeadId", "Lead", "Lead", updateable=False, child_relationship="CampaignMembers"),
        _ref("ContactId", "Contact", "Contact", updateable=False, child_relationship="CampaignMembers"),
        _pick("Status", ("Sent", "Responded"), default="Sent"),
        _bool("HasResponded", label="Responded", createable=False, updateable=False),
        FieldDef("FirstRespondedDate", "date", createable=False, updateable=False),
        _bool("SyncWithClang__c", label="Sync with Clang", custom=True),
    ],
    with_owner=False,
    unique_together=((("CampaignId", "LeadId"), "Already a campaign member."),
                     (("CampaignId", "ContactId"), "Already a campaign member.")),
)


def _contact_moment(name, prefix, label, parent_field, parent_object) -> SObjectDef:
    c = dict(custom=True)
    return _object(
        name, prefix, label, label + "s",
        [
            FieldDef("Name", "string", label=label + " Name", length=80),
            _ref(parent_field, parent_object, parent_field[:-3] + "__r", **c),
            FieldDef("Deployteq_Id__c", "string", label="Deployteq Id", length=64, external_id=True,
                     unique=True, **c),
            FieldDef("Mailing_Name__c", "string", label="Mailing Name", length=255, **c),
            FieldDef("Subject__c", "string", label="Subject", length=255, **c),
            FieldDef("Sent_Date__c", "datetime", label="Sent Date", **c),
            _bool("Opened__c", label="Opened", **c),
            FieldDef("First_Opened_Date__c", "datetime", label="First Opened Date", **c),
            FieldDef("Open_Count__c", "double", label="Open Count", **c),
            _bool("Clicked__c", label="Clicked", **c),
            FieldDef("First_Clicked_Date__c", "datetime", label="First Clicked Date", **c),
            FieldDef("Click_Count__c", "double", label="Click Count", **c),
            _bool("Bounced__c", label="Bounced", **c),
            FieldDef("Bounce_Date__c", "datetime", label="Bounce Date", **c),
            _pick("Bounce_Type__c", ("hard", "soft"), label="Bounce Type", restricted=True, **c),
            FieldDef("Online_Version_URL__c", "url", label="Online Version URL", length=255, **c),
        ],
        custom=True,
    )


LEAD_MOMENT = _contact_moment("ClangLeadContactMoment__c", "a0X", "Clang Lead Contact Moment", "Lead__c", "Lead")
CONTACT_MOMENT = _contact_moment(
    "ClangContactContactMoment__c", "a0Y", "Clang Contact Contact Moment", "Contact__c", "Contact"
)

OBJECTS: dict[str, SObjectDef] = {
    o.name: o for o in (USER, LEAD, CONTACT, ACCOUNT, CAMPAIGN, CAMPAIGN_MEMBER, LEAD_MOMENT, CONTACT_MOMENT)
}
OBJECTS_LOWER = {name.lower(): o for name, o in OBJECTS.items()}
BY_PREFIX = {o.key_prefix: o for o in OBJECTS.values()}
# (parent object, child relationship name), lower case -> (child object, its field pointing at the parent)
CHILD_RELATIONSHIPS = {
    (f.reference_to.lower(), f.child_relationship.lower()): (child.name, f.name)
    for child in OBJECTS.values()
    for f in child.fields.values()
    if f.child_relationship
}


def sobject(name: str) -> SObjectDef | None:
    """The object definition for a (case-insensitive) name, or None."""
    return OBJECTS_LOWER.get(name.lower()) if isinstance(name, str) else None


def global_describe(api_version: str) -> dict:
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [o.summary(api_version) for o in OBJECTS.values()],
    }


def compound_name(record: dict) -> str | None:
    """Lead/Contact/User ``Name``: first and last name, as the API returns it."""
    first, last = record.get("FirstName"), record.get("LastName")
    if first and last:
        return f"{first} {last}"
    return first or last or None
