import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Platform(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLATFORM_UNSPECIFIED: _ClassVar[Platform]
    PLATFORM_APNS: _ClassVar[Platform]
    PLATFORM_FCM: _ClassVar[Platform]
    PLATFORM_WEBPUSH: _ClassVar[Platform]
    PLATFORM_HMS: _ClassVar[Platform]

class ApnsEnvironment(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APNS_ENVIRONMENT_UNSPECIFIED: _ClassVar[ApnsEnvironment]
    APNS_ENVIRONMENT_PRODUCTION: _ClassVar[ApnsEnvironment]
    APNS_ENVIRONMENT_SANDBOX: _ClassVar[ApnsEnvironment]

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_UNSPECIFIED: _ClassVar[Priority]
    PRIORITY_HIGH: _ClassVar[Priority]
    PRIORITY_NORMAL: _ClassVar[Priority]

class PushType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PUSH_TYPE_UNSPECIFIED: _ClassVar[PushType]
    PUSH_TYPE_ALERT: _ClassVar[PushType]
    PUSH_TYPE_BACKGROUND: _ClassVar[PushType]
    PUSH_TYPE_VOIP: _ClassVar[PushType]
    PUSH_TYPE_LIVEACTIVITY: _ClassVar[PushType]
    PUSH_TYPE_COMPLICATION: _ClassVar[PushType]
    PUSH_TYPE_FILEPROVIDER: _ClassVar[PushType]
    PUSH_TYPE_MDM: _ClassVar[PushType]
    PUSH_TYPE_LOCATION: _ClassVar[PushType]
    PUSH_TYPE_PUSHTOTALK: _ClassVar[PushType]
    PUSH_TYPE_WIDGETS: _ClassVar[PushType]
    PUSH_TYPE_CONTROLS: _ClassVar[PushType]

class RegistrationOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REGISTRATION_OUTCOME_UNSPECIFIED: _ClassVar[RegistrationOutcome]
    REGISTRATION_OUTCOME_CREATED: _ClassVar[RegistrationOutcome]
    REGISTRATION_OUTCOME_UPDATED: _ClassVar[RegistrationOutcome]
    REGISTRATION_OUTCOME_INVALID: _ClassVar[RegistrationOutcome]

class LocalTimePassed(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOCAL_TIME_PASSED_UNSPECIFIED: _ClassVar[LocalTimePassed]
    LOCAL_TIME_PASSED_NEXT_DAY: _ClassVar[LocalTimePassed]
    LOCAL_TIME_PASSED_SEND_NOW: _ClassVar[LocalTimePassed]

class NotificationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOTIFICATION_STATE_UNSPECIFIED: _ClassVar[NotificationState]
    NOTIFICATION_STATE_QUEUED: _ClassVar[NotificationState]
    NOTIFICATION_STATE_SCHEDULED: _ClassVar[NotificationState]
    NOTIFICATION_STATE_RUNNING: _ClassVar[NotificationState]
    NOTIFICATION_STATE_COMPLETED: _ClassVar[NotificationState]
    NOTIFICATION_STATE_FAILED: _ClassVar[NotificationState]
    NOTIFICATION_STATE_CANCELLED: _ClassVar[NotificationState]

class DeliveryStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_STATUS_UNSPECIFIED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_DELIVERED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_FAILED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_TOKEN_INVALID: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_EXPIRED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_CANCELLED: _ClassVar[DeliveryStatus]
PLATFORM_UNSPECIFIED: Platform
PLATFORM_APNS: Platform
PLATFORM_FCM: Platform
PLATFORM_WEBPUSH: Platform
PLATFORM_HMS: Platform
APNS_ENVIRONMENT_UNSPECIFIED: ApnsEnvironment
APNS_ENVIRONMENT_PRODUCTION: ApnsEnvironment
APNS_ENVIRONMENT_SANDBOX: ApnsEnvironment
PRIORITY_UNSPECIFIED: Priority
PRIORITY_HIGH: Priority
PRIORITY_NORMAL: Priority
PUSH_TYPE_UNSPECIFIED: PushType
PUSH_TYPE_ALERT: PushType
PUSH_TYPE_BACKGROUND: PushType
PUSH_TYPE_VOIP: PushType
PUSH_TYPE_LIVEACTIVITY: PushType
PUSH_TYPE_COMPLICATION: PushType
PUSH_TYPE_FILEPROVIDER: PushType
PUSH_TYPE_MDM: PushType
PUSH_TYPE_LOCATION: PushType
PUSH_TYPE_PUSHTOTALK: PushType
PUSH_TYPE_WIDGETS: PushType
PUSH_TYPE_CONTROLS: PushType
REGISTRATION_OUTCOME_UNSPECIFIED: RegistrationOutcome
REGISTRATION_OUTCOME_CREATED: RegistrationOutcome
REGISTRATION_OUTCOME_UPDATED: RegistrationOutcome
REGISTRATION_OUTCOME_INVALID: RegistrationOutcome
LOCAL_TIME_PASSED_UNSPECIFIED: LocalTimePassed
LOCAL_TIME_PASSED_NEXT_DAY: LocalTimePassed
LOCAL_TIME_PASSED_SEND_NOW: LocalTimePassed
NOTIFICATION_STATE_UNSPECIFIED: NotificationState
NOTIFICATION_STATE_QUEUED: NotificationState
NOTIFICATION_STATE_SCHEDULED: NotificationState
NOTIFICATION_STATE_RUNNING: NotificationState
NOTIFICATION_STATE_COMPLETED: NotificationState
NOTIFICATION_STATE_FAILED: NotificationState
NOTIFICATION_STATE_CANCELLED: NotificationState
DELIVERY_STATUS_UNSPECIFIED: DeliveryStatus
DELIVERY_STATUS_DELIVERED: DeliveryStatus
DELIVERY_STATUS_FAILED: DeliveryStatus
DELIVERY_STATUS_TOKEN_INVALID: DeliveryStatus
DELIVERY_STATUS_EXPIRED: DeliveryStatus
DELIVERY_STATUS_CANCELLED: DeliveryStatus

class Token(_message.Message):
    __slots__ = ("app_id", "token", "platform", "user_id", "topics", "device_id", "locale", "timezone", "app_version", "apns_environment", "created_at", "last_seen_at")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    APP_VERSION_FIELD_NUMBER: _ClassVar[int]
    APNS_ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    token: str
    platform: Platform
    user_id: str
    topics: _containers.RepeatedScalarFieldContainer[str]
    device_id: str
    locale: str
    timezone: str
    app_version: str
    apns_environment: ApnsEnvironment
    created_at: _timestamp_pb2.Timestamp
    last_seen_at: _timestamp_pb2.Timestamp
    def __init__(self, app_id: _Optional[str] = ..., token: _Optional[str] = ..., platform: _Optional[_Union[Platform, str]] = ..., user_id: _Optional[str] = ..., topics: _Optional[_Iterable[str]] = ..., device_id: _Optional[str] = ..., locale: _Optional[str] = ..., timezone: _Optional[str] = ..., app_version: _Optional[str] = ..., apns_environment: _Optional[_Union[ApnsEnvironment, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterTokenRequest(_message.Message):
    __slots__ = ("app_id", "token", "platform", "user_id", "topics", "device_id", "locale", "timezone", "app_version", "apns_environment")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    APP_VERSION_FIELD_NUMBER: _ClassVar[int]
    APNS_ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    token: str
    platform: Platform
    user_id: str
    topics: _containers.RepeatedScalarFieldContainer[str]
    device_id: str
    locale: str
    timezone: str
    app_version: str
    apns_environment: ApnsEnvironment
    def __init__(self, app_id: _Optional[str] = ..., token: _Optional[str] = ..., platform: _Optional[_Union[Platform, str]] = ..., user_id: _Optional[str] = ..., topics: _Optional[_Iterable[str]] = ..., device_id: _Optional[str] = ..., locale: _Optional[str] = ..., timezone: _Optional[str] = ..., app_version: _Optional[str] = ..., apns_environment: _Optional[_Union[ApnsEnvironment, str]] = ...) -> None: ...

class RegisterTokenResponse(_message.Message):
    __slots__ = ("token", "created")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    token: Token
    created: bool
    def __init__(self, token: _Optional[_Union[Token, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class RegisterTokensRequest(_message.Message):
    __slots__ = ("app_id", "items")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    items: _containers.RepeatedCompositeFieldContainer[TokenRegistration]
    def __init__(self, app_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[TokenRegistration, _Mapping]]] = ...) -> None: ...

class TokenRegistration(_message.Message):
    __slots__ = ("token", "platform", "user_id", "topics", "device_id", "locale", "timezone", "app_version", "apns_environment")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    APP_VERSION_FIELD_NUMBER: _ClassVar[int]
    APNS_ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    token: str
    platform: Platform
    user_id: str
    topics: _containers.RepeatedScalarFieldContainer[str]
    device_id: str
    locale: str
    timezone: str
    app_version: str
    apns_environment: ApnsEnvironment
    def __init__(self, token: _Optional[str] = ..., platform: _Optional[_Union[Platform, str]] = ..., user_id: _Optional[str] = ..., topics: _Optional[_Iterable[str]] = ..., device_id: _Optional[str] = ..., locale: _Optional[str] = ..., timezone: _Optional[str] = ..., app_version: _Optional[str] = ..., apns_environment: _Optional[_Union[ApnsEnvironment, str]] = ...) -> None: ...

class FieldViolation(_message.Message):
    __slots__ = ("field", "description")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    field: str
    description: str
    def __init__(self, field: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class RegistrationResult(_message.Message):
    __slots__ = ("index", "outcome", "violations")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    index: int
    outcome: RegistrationOutcome
    violations: _containers.RepeatedCompositeFieldContainer[FieldViolation]
    def __init__(self, index: _Optional[int] = ..., outcome: _Optional[_Union[RegistrationOutcome, str]] = ..., violations: _Optional[_Iterable[_Union[FieldViolation, _Mapping]]] = ...) -> None: ...

class RegisterTokensResponse(_message.Message):
    __slots__ = ("results", "created", "updated", "invalid")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    INVALID_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RegistrationResult]
    created: int
    updated: int
    invalid: int
    def __init__(self, results: _Optional[_Iterable[_Union[RegistrationResult, _Mapping]]] = ..., created: _Optional[int] = ..., updated: _Optional[int] = ..., invalid: _Optional[int] = ...) -> None: ...

class UnregisterTokenRequest(_message.Message):
    __slots__ = ("app_id", "token", "platform")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    token: str
    platform: Platform
    def __init__(self, app_id: _Optional[str] = ..., token: _Optional[str] = ..., platform: _Optional[_Union[Platform, str]] = ...) -> None: ...

class UnregisterTokenResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: bool
    def __init__(self, removed: _Optional[bool] = ...) -> None: ...

class PruneRequest(_message.Message):
    __slots__ = ("app_id", "stale_after", "platforms", "dry_run")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    STALE_AFTER_FIELD_NUMBER: _ClassVar[int]
    PLATFORMS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    stale_after: _duration_pb2.Duration
    platforms: _containers.RepeatedScalarFieldContainer[Platform]
    dry_run: bool
    def __init__(self, app_id: _Optional[str] = ..., stale_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., platforms: _Optional[_Iterable[_Union[Platform, str]]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class PruneResponse(_message.Message):
    __slots__ = ("removed", "would_remove")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    WOULD_REMOVE_FIELD_NUMBER: _ClassVar[int]
    removed: int
    would_remove: int
    def __init__(self, removed: _Optional[int] = ..., would_remove: _Optional[int] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("token", "platform", "apns_environment")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    APNS_ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    token: str
    platform: Platform
    apns_environment: ApnsEnvironment
    def __init__(self, token: _Optional[str] = ..., platform: _Optional[_Union[Platform, str]] = ..., apns_environment: _Optional[_Union[ApnsEnvironment, str]] = ...) -> None: ...

class DeviceList(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    def __init__(self, devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ...) -> None: ...

class UserList(_message.Message):
    __slots__ = ("user_ids",)
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Target(_message.Message):
    __slots__ = ("devices", "users", "topic", "all", "platforms")
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    PLATFORMS_FIELD_NUMBER: _ClassVar[int]
    devices: DeviceList
    users: UserList
    topic: str
    all: bool
    platforms: _containers.RepeatedScalarFieldContainer[Platform]
    def __init__(self, devices: _Optional[_Union[DeviceList, _Mapping]] = ..., users: _Optional[_Union[UserList, _Mapping]] = ..., topic: _Optional[str] = ..., all: _Optional[bool] = ..., platforms: _Optional[_Iterable[_Union[Platform, str]]] = ...) -> None: ...

class ApnsOptions(_message.Message):
    __slots__ = ("payload", "headers", "topic")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    payload: _struct_pb2.Struct
    headers: _containers.ScalarMap[str, str]
    topic: str
    def __init__(self, payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., headers: _Optional[_Mapping[str, str]] = ..., topic: _Optional[str] = ...) -> None: ...

class FcmOptions(_message.Message):
    __slots__ = ("android", "apns", "webpush", "analytics_label")
    ANDROID_FIELD_NUMBER: _ClassVar[int]
    APNS_FIELD_NUMBER: _ClassVar[int]
    WEBPUSH_FIELD_NUMBER: _ClassVar[int]
    ANALYTICS_LABEL_FIELD_NUMBER: _ClassVar[int]
    android: _struct_pb2.Struct
    apns: _struct_pb2.Struct
    webpush: _struct_pb2.Struct
    analytics_label: str
    def __init__(self, android: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., apns: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., webpush: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., analytics_label: _Optional[str] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("title", "body", "subtitle", "image_url", "sound", "badge", "data", "category", "thread_id", "collapse_key", "priority", "ttl", "push_type", "content_available", "mutable_content", "apns", "fcm", "localized", "title_loc_key", "title_loc_args", "body_loc_key", "body_loc_args")
    class DataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LocalizedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: LocalizedContent
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[LocalizedContent, _Mapping]] = ...) -> None: ...
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SUBTITLE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    SOUND_FIELD_NUMBER: _ClassVar[int]
    BADGE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    COLLAPSE_KEY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    PUSH_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    MUTABLE_CONTENT_FIELD_NUMBER: _ClassVar[int]
    APNS_FIELD_NUMBER: _ClassVar[int]
    FCM_FIELD_NUMBER: _ClassVar[int]
    LOCALIZED_FIELD_NUMBER: _ClassVar[int]
    TITLE_LOC_KEY_FIELD_NUMBER: _ClassVar[int]
    TITLE_LOC_ARGS_FIELD_NUMBER: _ClassVar[int]
    BODY_LOC_KEY_FIELD_NUMBER: _ClassVar[int]
    BODY_LOC_ARGS_FIELD_NUMBER: _ClassVar[int]
    title: str
    body: str
    subtitle: str
    image_url: str
    sound: str
    badge: int
    data: _containers.ScalarMap[str, str]
    category: str
    thread_id: str
    collapse_key: str
    priority: Priority
    ttl: _duration_pb2.Duration
    push_type: PushType
    content_available: bool
    mutable_content: bool
    apns: ApnsOptions
    fcm: FcmOptions
    localized: _containers.MessageMap[str, LocalizedContent]
    title_loc_key: str
    title_loc_args: _containers.RepeatedScalarFieldContainer[str]
    body_loc_key: str
    body_loc_args: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, title: _Optional[str] = ..., body: _Optional[str] = ..., subtitle: _Optional[str] = ..., image_url: _Optional[str] = ..., sound: _Optional[str] = ..., badge: _Optional[int] = ..., data: _Optional[_Mapping[str, str]] = ..., category: _Optional[str] = ..., thread_id: _Optional[str] = ..., collapse_key: _Optional[str] = ..., priority: _Optional[_Union[Priority, str]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., push_type: _Optional[_Union[PushType, str]] = ..., content_available: _Optional[bool] = ..., mutable_content: _Optional[bool] = ..., apns: _Optional[_Union[ApnsOptions, _Mapping]] = ..., fcm: _Optional[_Union[FcmOptions, _Mapping]] = ..., localized: _Optional[_Mapping[str, LocalizedContent]] = ..., title_loc_key: _Optional[str] = ..., title_loc_args: _Optional[_Iterable[str]] = ..., body_loc_key: _Optional[str] = ..., body_loc_args: _Optional[_Iterable[str]] = ...) -> None: ...

class SendRequest(_message.Message):
    __slots__ = ("app_id", "target", "message", "idempotency_key", "validate_only", "send_at", "max_per_second", "local_time")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    SEND_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    LOCAL_TIME_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    target: Target
    message: Message
    idempotency_key: str
    validate_only: bool
    send_at: _timestamp_pb2.Timestamp
    max_per_second: int
    local_time: LocalTime
    def __init__(self, app_id: _Optional[str] = ..., target: _Optional[_Union[Target, _Mapping]] = ..., message: _Optional[_Union[Message, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., validate_only: _Optional[bool] = ..., send_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_per_second: _Optional[int] = ..., local_time: _Optional[_Union[LocalTime, _Mapping]] = ...) -> None: ...

class LocalTime(_message.Message):
    __slots__ = ("hour", "minute", "fallback_timezone", "if_passed")
    HOUR_FIELD_NUMBER: _ClassVar[int]
    MINUTE_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    IF_PASSED_FIELD_NUMBER: _ClassVar[int]
    hour: int
    minute: int
    fallback_timezone: str
    if_passed: LocalTimePassed
    def __init__(self, hour: _Optional[int] = ..., minute: _Optional[int] = ..., fallback_timezone: _Optional[str] = ..., if_passed: _Optional[_Union[LocalTimePassed, str]] = ...) -> None: ...

class SendResponse(_message.Message):
    __slots__ = ("notification_id", "duplicate", "targeted")
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    TARGETED_FIELD_NUMBER: _ClassVar[int]
    notification_id: str
    duplicate: bool
    targeted: int
    def __init__(self, notification_id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., targeted: _Optional[int] = ...) -> None: ...

class GetNotificationRequest(_message.Message):
    __slots__ = ("app_id", "notification_id")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    notification_id: str
    def __init__(self, app_id: _Optional[str] = ..., notification_id: _Optional[str] = ...) -> None: ...

class GetNotificationResponse(_message.Message):
    __slots__ = ("notification",)
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    notification: Notification
    def __init__(self, notification: _Optional[_Union[Notification, _Mapping]] = ...) -> None: ...

class Notification(_message.Message):
    __slots__ = ("notification_id", "app_id", "state", "targeted", "delivered", "failed", "invalid_tokens", "pending", "expired", "created_at", "send_at", "updated_at", "completed_at", "error", "idempotency_key", "vanished", "cancelled", "cancel_requested_at", "waiting", "max_per_second")
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TARGETED_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    INVALID_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SEND_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    VANISHED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    notification_id: str
    app_id: str
    state: NotificationState
    targeted: int
    delivered: int
    failed: int
    invalid_tokens: int
    pending: int
    expired: int
    created_at: _timestamp_pb2.Timestamp
    send_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    error: str
    idempotency_key: str
    vanished: int
    cancelled: int
    cancel_requested_at: _timestamp_pb2.Timestamp
    waiting: int
    max_per_second: int
    def __init__(self, notification_id: _Optional[str] = ..., app_id: _Optional[str] = ..., state: _Optional[_Union[NotificationState, str]] = ..., targeted: _Optional[int] = ..., delivered: _Optional[int] = ..., failed: _Optional[int] = ..., invalid_tokens: _Optional[int] = ..., pending: _Optional[int] = ..., expired: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., send_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., vanished: _Optional[int] = ..., cancelled: _Optional[int] = ..., cancel_requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., waiting: _Optional[int] = ..., max_per_second: _Optional[int] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("cursor", "notification_id", "app_id", "token", "platform", "user_id", "status", "provider_message_id", "provider_status", "reason", "attempts", "token_removed", "at")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_REMOVED_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    notification_id: str
    app_id: str
    token: str
    platform: Platform
    user_id: str
    status: DeliveryStatus
    provider_message_id: str
    provider_status: int
    reason: str
    attempts: int
    token_removed: bool
    at: _timestamp_pb2.Timestamp
    def __init__(self, cursor: _Optional[str] = ..., notification_id: _Optional[str] = ..., app_id: _Optional[str] = ..., token: _Optional[str] = ..., platform: _Optional[_Union[Platform, str]] = ..., user_id: _Optional[str] = ..., status: _Optional[_Union[DeliveryStatus, str]] = ..., provider_message_id: _Optional[str] = ..., provider_status: _Optional[int] = ..., reason: _Optional[str] = ..., attempts: _Optional[int] = ..., token_removed: _Optional[bool] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StreamReceiptsRequest(_message.Message):
    __slots__ = ("app_id", "notification_id", "after")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    notification_id: str
    after: str
    def __init__(self, app_id: _Optional[str] = ..., notification_id: _Optional[str] = ..., after: _Optional[str] = ...) -> None: ...

class StreamReceiptsResponse(_message.Message):
    __slots__ = ("receipt",)
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    receipt: Receipt
    def __init__(self, receipt: _Optional[_Union[Receipt, _Mapping]] = ...) -> None: ...

class CancelNotificationRequest(_message.Message):
    __slots__ = ("app_id", "notification_id")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    notification_id: str
    def __init__(self, app_id: _Optional[str] = ..., notification_id: _Optional[str] = ...) -> None: ...

class CancelNotificationResponse(_message.Message):
    __slots__ = ("notification",)
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    notification: Notification
    def __init__(self, notification: _Optional[_Union[Notification, _Mapping]] = ...) -> None: ...

class GetTokenRequest(_message.Message):
    __slots__ = ("app_id", "platform", "token")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    platform: Platform
    token: str
    def __init__(self, app_id: _Optional[str] = ..., platform: _Optional[_Union[Platform, str]] = ..., token: _Optional[str] = ...) -> None: ...

class GetTokenResponse(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: Token
    def __init__(self, token: _Optional[_Union[Token, _Mapping]] = ...) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ("app_id", "user_id", "topic", "platform", "last_seen_before", "last_seen_after", "page_size", "page_token")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_BEFORE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AFTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    user_id: str
    topic: str
    platform: Platform
    last_seen_before: _timestamp_pb2.Timestamp
    last_seen_after: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, app_id: _Optional[str] = ..., user_id: _Optional[str] = ..., topic: _Optional[str] = ..., platform: _Optional[_Union[Platform, str]] = ..., last_seen_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ("tokens", "next_page_token")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[Token]
    next_page_token: str
    def __init__(self, tokens: _Optional[_Iterable[_Union[Token, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListNotificationsRequest(_message.Message):
    __slots__ = ("app_id", "state", "created_after", "created_before", "page_size", "page_token")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    state: NotificationState
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, app_id: _Optional[str] = ..., state: _Optional[_Union[NotificationState, str]] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListNotificationsResponse(_message.Message):
    __slots__ = ("notifications", "next_page_token")
    NOTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    notifications: _containers.RepeatedCompositeFieldContainer[Notification]
    next_page_token: str
    def __init__(self, notifications: _Optional[_Iterable[_Union[Notification, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class LocalizedContent(_message.Message):
    __slots__ = ("title", "subtitle", "body", "image_url")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SUBTITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    title: str
    subtitle: str
    body: str
    image_url: str
    def __init__(self, title: _Optional[str] = ..., subtitle: _Optional[str] = ..., body: _Optional[str] = ..., image_url: _Optional[str] = ...) -> None: ...
